"""Runs: a row in the ``runs`` table plus a folder ``runs/<id>/``.

The folder holds ``config.json`` (the resolved ``TrainConfig``), ``classes.json``,
``status.json`` (rewritten atomically), ``metrics.jsonl`` (appended), ``log.txt`` (the
process's output), ``last.pt`` and ``best.pt``, and ``STOP`` while a stop is requested.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from core.device import cpu_has_fast_bf16, pick_device
from core.errors import ImageLabError, NotFoundError
from core.store.run_paths import RunPaths, checked_run_id, run_paths, summary_row
from core.store.workspace import Workspace, atomic_write_text
from core.training.config import TrainConfig, resolve_config
from core.training.data import dataset_facts

FINAL = ("finished", "stopped", "failed")


@dataclass
class Run:
    """One run's database row, its config and summary metrics, and its folder. Times are Unix
    seconds."""
    id: str
    dataset: str | None
    status: str
    config: dict
    metrics: dict
    label_version: int | None
    pid: int | None
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    folder: Path
    kind: str = "train"              # train | finetune
    name: str = ""                   # a name given on the Demo page's model card

    @property
    def paths(self) -> RunPaths:
        """Every file of this run's folder."""
        return RunPaths(self.folder)

    def summary(self) -> dict:
        """This run as a table row (``core.store.run_paths.summary_row``)."""
        return summary_row(run_id=self.id, dataset=self.dataset, kind=self.kind,
                           status=self.status, config=self.config, metrics=self.metrics,
                           name=self.name)

    def to_dict(self) -> dict:
        """The row as a plain dict (the folder as a string)."""
        d = dict(self.__dict__)
        d["folder"] = str(self.folder)
        return d


def new_run_id() -> str:
    """A new run id: local start time ``YYYYmmdd-HHMMSS`` and 4 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def device_bf16(device_type: str) -> bool:
    """Whether this device type trains fast in bfloat16 (CUDA with bf16 support, or a CPU with
    native bf16)."""
    import torch
    if device_type.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device_type == "cpu" and cpu_has_fast_bf16()


def prepare_config(ws: Workspace, cfg: TrainConfig) -> TrainConfig:
    """Validate the dataset and fill the automatic options."""
    facts = dataset_facts(ws, cfg.dataset, cfg.label_version)
    if cfg.label_version is None:
        # Pin the labels the run starts on: edits made while it trains (or while it is
        # stopped) do not change what it learns, so it can always resume exactly, and its
        # results trace to one label version. The next run picks the edits up.
        cfg.label_version = facts.label_version
    device = pick_device(cfg.device)
    cfg = resolve_config(cfg, facts, device.split(":")[0], device_bf16(device.split(":")[0]))
    if cfg.batch_size > facts.num_train:
        raise ImageLabError(f"batch size {cfg.batch_size} is larger than the {facts.num_train} "
                            f"training images of {cfg.dataset!r}; choose at most {facts.num_train}")
    return cfg


def create_run(ws: Workspace, cfg: TrainConfig, *, status: str = "queued", name: str = "") -> Run:
    """Resolve ``cfg``, then write the run folder and its row. Returns the new run."""
    cfg = prepare_config(ws, cfg)
    facts = dataset_facts(ws, cfg.dataset, cfg.label_version)
    run_id = new_run_id()
    paths = run_paths(ws, run_id)
    paths.folder.mkdir(parents=True)
    atomic_write_text(paths.config, cfg.to_json())
    atomic_write_text(paths.classes, json.dumps(facts.class_names))
    atomic_write_text(paths.status, json.dumps(
        {"status": status, "epoch": 0, "epochs": cfg.epochs, "updated_at": time.time()}))
    with ws.write() as conn:
        conn.execute("INSERT INTO runs (id, dataset_id, kind, name, status, config_json, "
                     "label_version, created_at) VALUES (?, ?, 'train', ?, ?, ?, ?, ?)",
                     (run_id, facts.dataset_id, name, status, cfg.to_json(), facts.label_version,
                      time.time()))
    return get_run(ws, run_id)


def get_run(ws: Workspace, run_id: str) -> Run:
    """The run ``run_id``; raises ``NotFoundError`` when there is none and ``ImageLabError`` for
    a malformed id (``checked_run_id``)."""
    checked_run_id(run_id)
    with ws.db() as conn:
        r = conn.execute("SELECT r.*, d.name AS dataset FROM runs r LEFT JOIN datasets d "
                         "ON d.id = r.dataset_id WHERE r.id = ?", (run_id,)).fetchone()
    if r is None:
        raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    return _to_run(ws, r)


def list_runs(ws: Workspace, limit: int = 50, dataset: str | None = None) -> list[Run]:
    """The newest ``limit`` runs, newest first, optionally of one dataset only."""
    sql = ("SELECT r.*, d.name AS dataset FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
           + ("WHERE d.name = ? " if dataset else "") + "ORDER BY r.created_at DESC LIMIT ?")
    with ws.db() as conn:
        rows = conn.execute(sql, ((dataset,) if dataset else ()) + (limit,)).fetchall()
    return [_to_run(ws, r) for r in rows]


def _to_run(ws: Workspace, r) -> Run:
    return Run(r["id"], r["dataset"], r["status"], json.loads(r["config_json"] or "{}"),
               json.loads(r["metrics_json"] or "{}"), r["label_version"], r["pid"], r["message"],
               r["created_at"], r["started_at"], r["finished_at"], run_paths(ws, r["id"]).folder,
               r["kind"] or "train", r["name"] or "")


def set_status(ws: Workspace, run_id: str, status: str, message: str = "",
               pid: int | None = None) -> None:
    """Set a run's status in the database and in ``status.json``."""
    now = time.time()
    with ws.write() as conn:
        conn.execute("UPDATE runs SET status=?, message=?, pid=COALESCE(?, pid), "
                     "finished_at=CASE WHEN ? IN ('finished','stopped','failed') THEN ? "
                     "ELSE finished_at END WHERE id=?",
                     (status, message, pid, status, now, run_id))
    paths = run_paths(ws, run_id)
    st = read_status(paths.folder)
    st.update(status=status, message=message, updated_at=now)
    atomic_write_text(paths.status, json.dumps(st))


def read_status(folder: Path) -> dict:
    """The run folder's ``status.json`` as a dict; empty when missing or unreadable."""
    try:
        return json.loads(RunPaths(folder).status.read_text())
    except (OSError, ValueError):
        return {}


class MetricRecords(list):
    """The records of a run's ``metrics.jsonl`` (a plain list of dicts), plus ``skipped``:
    how many lines could not be read and were left out."""

    skipped: int = 0


def read_metrics(folder: Path) -> MetricRecords:
    """Every record of ``metrics.jsonl``, in file order.

    A line that is not a JSON object (torn by a killed writer, or damaged) is left out
    and counted in the result's ``skipped``, so that views can say the curves miss
    points; blank lines are ignored. A missing file gives no records.
    """
    out = MetricRecords()
    try:
        with open(RunPaths(folder).metrics, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    out.append(record)
                else:
                    out.skipped += 1
    except OSError:
        pass
    return out


def read_log(folder: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the run's log (from its last 64 kB); empty when there is none."""
    try:
        with open(RunPaths(folder).log, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def load_run_config(folder: Path) -> TrainConfig:
    """The ``TrainConfig`` stored in the run folder; raises ``ImageLabError`` when unreadable."""
    try:
        return TrainConfig.from_dict(json.loads(RunPaths(folder).config.read_text()))
    except (OSError, ValueError) as exc:
        raise ImageLabError(f"run folder {folder} has no readable config.json ({exc})") from None
