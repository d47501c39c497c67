"""The model registry: every finished run is a model with a card built from its records.

A card holds the dataset and label version, the classes, the metrics (training's,
plus evaluation's when stored), the training config, the parameter count and
weight size, and a measured CPU latency. Runs can be named and one run per
dataset can carry the ``champion`` tag.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from core.errors import ImageLabError, NotFoundError
from core.inference.predictor import LoadedModel, load_run_model
from core.store.run_paths import run_paths
from core.store.workspace import Workspace, atomic_write_text

CHAMPION = "champion"


@dataclass
class ModelCard:
    """What the Demo page shows about a finished run's model: data, architecture, size (MiB), CPU
    latency (ms per image), training metrics and stored evaluations."""
    run_id: str
    name: str
    champion: bool
    dataset: str | None
    label_version: int | None
    arch: str
    classes: list[str]
    image_size: int
    channels: int
    num_parameters: int
    weights_mb: float
    cpu_latency_ms: float | None
    metrics: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)   # split → {accuracy, macro_f1, ece}
    config: dict = field(default_factory=dict)
    created_at: float = 0.0

    def to_dict(self) -> dict:
        """The card as a plain dict (JSON-ready)."""
        return asdict(self)

    @property
    def title(self) -> str:
        """A one-line title: ★ for the champion, the name (or run id), dataset and architecture."""
        star = "★ " if self.champion else ""
        return f"{star}{self.name or self.run_id} · {self.dataset} · {self.arch}"


def finished_run_ids(ws: Workspace, dataset: str | None = None) -> list[str]:
    """Ids of finished runs, optionally of one dataset: the champion first, then newest first."""
    sql = ("SELECT r.id FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
           "WHERE r.status = 'finished' " + ("AND d.name = ? " if dataset else "") +
           "ORDER BY (r.tags LIKE '%champion%') DESC, r.created_at DESC")
    with ws.db() as conn:
        return [r[0] for r in conn.execute(sql, (dataset,) if dataset else ())]


def model_card(ws: Workspace, run_id: str, lm: LoadedModel | None = None,
               measure: bool = True) -> ModelCard:
    """The model card of run ``run_id``, loading its model unless ``lm`` is given.

    ``measure`` times CPU inference for ``cpu_latency_ms`` (else None). Raises
    ``NotFoundError`` for an unknown run."""
    with ws.db() as conn:
        r = conn.execute("SELECT r.*, d.name AS dataset FROM runs r LEFT JOIN datasets d "
                         "ON d.id = r.dataset_id WHERE r.id = ?", (run_id,)).fetchone()
    if r is None:
        raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    lm = lm or load_run_model(ws, run_id)
    weights_mb = sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2 ** 20   # MiB
    return ModelCard(
        run_id=run_id, name=r["name"], champion=CHAMPION in _tags(r["tags"]),
        dataset=r["dataset"], label_version=r["label_version"], arch=lm.arch,
        classes=lm.classes, image_size=lm.image_size, channels=lm.channels,
        num_parameters=lm.num_parameters, weights_mb=round(weights_mb, 3),
        cpu_latency_ms=cpu_latency_ms(ws, lm) if measure else None,
        metrics=json.loads(r["metrics_json"] or "{}"), evaluation=_evaluations(ws, run_id),
        config=json.loads(r["config_json"] or "{}"), created_at=r["created_at"])


def cpu_latency_ms(ws: Workspace, lm: LoadedModel, repeats: int = 30) -> float:
    """Median single-image forward time on the CPU, measured once per checkpoint."""
    path = ws.runs_dir / lm.run_id / "card.json"
    mtime = lm.checkpoint.stat().st_mtime
    try:
        stored = json.loads(path.read_text())
        if stored.get("checkpoint_mtime") == mtime:
            return float(stored["cpu_latency_ms"])
    except (OSError, ValueError, KeyError):
        pass
    x = torch.zeros(1, lm.channels, lm.image_size, lm.image_size)
    times = []
    with torch.inference_mode():
        for k in range(repeats + 3):
            t0 = time.perf_counter()
            lm.model(x)
            if k >= 3:
                times.append(time.perf_counter() - t0)
    latency = float(np.median(times) * 1000)
    atomic_write_text(path, json.dumps({"checkpoint_mtime": mtime, "cpu_latency_ms": latency,
                                        "threads": torch.get_num_threads()}))
    return latency


def set_name(ws: Workspace, run_id: str, name: str) -> None:
    """Give run ``run_id`` a display name (trimmed, at most 80 characters); raises
    ``NotFoundError`` for an unknown run."""
    name = name.strip()[:80]
    with ws.write() as conn:
        if conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount == 0:
            raise NotFoundError(f"unknown run {run_id!r}")


def set_champion(ws: Workspace, run_id: str) -> None:
    """Tag ``run_id`` as its dataset's champion (and untag the previous one)."""
    with ws.write() as conn:
        r = conn.execute("SELECT dataset_id, status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"unknown run {run_id!r}")
        if r["status"] != "finished":
            raise ImageLabError(f"run {run_id} is {r['status']}; only a finished run can be champion")
        for other in conn.execute("SELECT id, tags FROM runs WHERE dataset_id IS ? AND id != ?",
                                  (r["dataset_id"], run_id)).fetchall():
            tags = [t for t in _tags(other["tags"]) if t != CHAMPION]
            conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (",".join(tags), other["id"]))
        own = conn.execute("SELECT tags FROM runs WHERE id = ?", (run_id,)).fetchone()["tags"]
        tags = _tags(own)
        if CHAMPION not in tags:
            tags.append(CHAMPION)
        conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (",".join(tags), run_id))


def champion(ws: Workspace, dataset: str | None = None) -> str | None:
    """The id of the champion among finished runs (of ``dataset`` if given), or None."""
    for run_id in finished_run_ids(ws, dataset):
        with ws.db() as conn:
            tags = conn.execute("SELECT tags FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        if CHAMPION in _tags(tags):
            return run_id
    return None


def _tags(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t]


def _evaluations(ws: Workspace, run_id: str) -> dict:
    out = {}
    folder = run_paths(ws, run_id).eval_dir
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rep = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[path.stem] = {"accuracy": rep.get("accuracy"), "macro_f1": rep.get("macro", {}).get("f1"),
                          "ece": rep.get("calibration", {}).get("ece"),
                          "num_samples": rep.get("num_samples")}
    return out


def accuracy_coverage_for(ws: Workspace, run_id: str) -> dict | None:
    """The stored accuracy–coverage curve (validation preferred) for the abstain threshold."""
    for split in ("val", "test"):
        for path in run_paths(ws, run_id).eval_dir.glob(f"*-{split}.json"):
            try:
                return {**json.loads(path.read_text())["accuracy_coverage"], "source": path.stem}
            except (OSError, ValueError, KeyError):
                continue
    return None


__all__ = ["ModelCard", "model_card", "finished_run_ids", "set_name", "set_champion", "champion",
           "cpu_latency_ms", "accuracy_coverage_for"]
