"""Where every file of a run lives, and a run's one-line summary: the run registry's
plain parts, free of torch so that overviews (the Home page) stay light.

A run folder ``runs/<id>/`` holds:

- ``config.json``: the resolved ``TrainConfig``; ``classes.json``: the class names;
- ``status.json`` (rewritten atomically), ``metrics.jsonl`` (appended), ``log.txt``
  (the process's output), ``STOP`` while a stop is requested;
- ``last.pt``, ``best.pt``; fine-tuning runs also ``init.pt`` and ``finetune.json``;
- ``predictions_val.npz`` (held-out predictions for label review), ``calibration.json``
  (the fitted temperature), ``eval/<dataset>-<split>.json`` and ``.npz`` (stored reports);
- ``service/predictions.jsonl``: the prediction service's log (``.1``, ``.2``...: its
  rotated predecessors, newest first).

Code names these files through ``RunPaths``, never as string literals.

A run id names one folder directly under ``runs/``: ``checked_run_id`` refuses anything
else (``..``, slashes, a leading dot...) with an ``ImageLabError``, and ``run_paths`` goes
through it, so no run id resolves outside ``runs/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ImageLabError, NotFoundError
from core.store.workspace import Workspace

# New ids are ``YYYYmmdd-HHMMSS-xxxx`` (``core.training.runs.new_run_id``); the check accepts
# that shape's alphabet (letters, digits, ``-``, ``_``; a letter or digit first; at most 64),
# which can never be ``..``, hold a separator or name anything but a child of ``runs/``.
RUN_ID_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


def checked_run_id(run_id: object, ws: Workspace | None = None) -> str:
    """``run_id`` if it is a well-formed run id (and, given ``ws``, a run in its runs table).

    Raises ``ImageLabError`` for a malformed id (a path such as ``../x`` included) and
    ``NotFoundError`` for a well-formed id that ``ws`` has no run for.
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:77] + "..."
        raise ImageLabError(f"invalid run id {shown}: a run id looks like 20260101-120000-ab12 "
                            "(letters, digits, '-' and '_' only); see `python -m core runs list`")
    if ws is not None:
        with ws.db() as conn:
            found = conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        if found is None:
            raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    return run_id


@dataclass(frozen=True)
class RunPaths:
    """Every file of one run folder."""
    folder: Path

    @property
    def config(self) -> Path:
        """``config.json``: the run's resolved ``TrainConfig`` as JSON."""
        return self.folder / "config.json"

    @property
    def classes(self) -> Path:
        """``classes.json``: the class names, in the model's output order."""
        return self.folder / "classes.json"

    @property
    def status(self) -> Path:
        """``status.json``: state, epoch and progress; rewritten atomically while the run goes."""
        return self.folder / "status.json"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: one JSON object per logging step and per epoch, appended."""
        return self.folder / "metrics.jsonl"

    @property
    def log(self) -> Path:
        """``log.txt``: the training process's standard output and error."""
        return self.folder / "log.txt"

    @property
    def stop(self) -> Path:
        """``STOP``: present while a stop has been requested; the trainer polls for it."""
        return self.folder / "STOP"

    @property
    def last(self) -> Path:
        """``last.pt``: the checkpoint of the latest finished epoch (used to resume)."""
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        """``best.pt``: the checkpoint with the best validation accuracy so far."""
        return self.folder / "best.pt"

    @property
    def init(self) -> Path:
        """``init.pt``: a fine-tuning run's starting weights."""
        return self.folder / "init.pt"

    @property
    def compare(self) -> Path:
        """``compare.json``: a fine-tuning run's same-budget from-scratch twin."""
        return self.folder / "compare.json"

    @property
    def finetune(self) -> Path:
        """``finetune.json``: a fine-tuning run's source, head, layer groups, frozen groups, LR factors."""
        return self.folder / "finetune.json"

    @property
    def predictions_val(self) -> Path:
        """``predictions_val.npz``: held-out validation predictions, read by label review."""
        return self.folder / "predictions_val.npz"

    @property
    def calibration(self) -> Path:
        """``calibration.json``: the fitted softmax temperature."""
        return self.folder / "calibration.json"

    @property
    def eval_dir(self) -> Path:
        """``eval/``: stored evaluation reports (see ``eval_report``)."""
        return self.folder / "eval"

    def eval_report(self, dataset: str, split: str, suffix: str = ".json") -> Path:
        """The stored evaluation of this run on ``dataset``'s ``split`` (``.json`` report,
        ``.npz`` per-image probabilities)."""
        return self.eval_dir / f"{dataset}-{split}{suffix}"

    @property
    def service_dir(self) -> Path:
        """``service/``: files of the prediction service for this run."""
        return self.folder / "service"

    @property
    def prediction_log(self) -> Path:
        """``service/predictions.jsonl``: the prediction service's log, one JSON line per request."""
        return self.service_dir / "predictions.jsonl"

    def prediction_log_backup(self, n: int) -> Path:
        """``service/predictions.jsonl.<n>``: the ``n``-th rotated prediction log (1 = newest)."""
        return self.service_dir / f"predictions.jsonl.{int(n)}"

    def checkpoint(self, name: str) -> Path:
        """``best`` or ``last`` (or ``init``) as its ``.pt`` file."""
        return self.folder / f"{name.removesuffix('.pt')}.pt"


def run_paths(ws: Workspace, run_id: str) -> RunPaths:
    """The files of run ``run_id`` in workspace ``ws``: always a folder directly under ``runs/``.

    Raises ``ImageLabError`` for a malformed run id (see ``checked_run_id``); whether the run
    exists is the caller's question (``checked_run_id(run_id, ws)``)."""
    return RunPaths(ws.runs_dir / checked_run_id(run_id))


# The checkpoint every figure and every use of a run means by default (Evaluate, Demo,
# export, the service, fine-tuning from a run): ``best.pt``. ``last.pt`` is for resuming.
DEFAULT_CHECKPOINT = "best"
CHECKPOINT_MEANING = {
    "best": "the weights of the epoch with the best validation accuracy",
    "last": "the weights after the final epoch, which Resume continues from",
}


def checkpoint_text(name: str, epoch: int | None = None) -> str:
    """A checkpoint named for people: ``best.pt (epoch 7: the weights of the epoch with the
    best validation accuracy)``; ``name`` is ``best`` or ``last``, with or without ``.pt``."""
    stem = name.removesuffix(".pt")
    meaning = CHECKPOINT_MEANING.get(stem, "")
    inside = ": ".join(p for p in (f"epoch {epoch}" if epoch else "", meaning) if p)
    return f"{stem}.pt" + (f" ({inside})" if inside else "")


def best_val_text(metrics: dict) -> str:
    """A run's headline figure, naming its checkpoint: ``val 76.5% · best.pt (epoch 7)``.

    The figure is the validation accuracy of ``best.pt`` (``metrics``' ``best_val_accuracy``
    at ``best_epoch``, counted from 1); ``no val accuracy yet`` before the first epoch."""
    acc = metrics.get("best_val_accuracy")
    if acc is None or acc < 0:
        return "no val accuracy yet"
    epoch = metrics.get("best_epoch")
    return f"val {acc:.1%} · best.pt" + (f" (epoch {epoch})" if epoch else "")


def summary_row(*, run_id: str, dataset: str | None, kind: str | None, status: str,
                config: dict, metrics: dict, name: str | None = None) -> dict:
    """One run as a table row, the same on the Home page and the Train page:
    run, name, dataset, kind, model, status, epochs done/planned, the validation accuracy of
    ``best.pt`` (the default checkpoint) and its epoch, the final epoch's validation accuracy
    (``last.pt``), images per second."""
    ips = metrics.get("images_per_sec")
    best = metrics.get("best_val_accuracy")
    return {"run": run_id, "name": name or "", "dataset": dataset, "kind": kind or "train",
            "model": config.get("arch"), "status": status,
            "epochs": f"{metrics.get('epochs', 0)}/{config.get('epochs', '?')}",
            "best_val_accuracy": best if best is not None and best >= 0 else None,
            "best_epoch": metrics.get("best_epoch"),
            "last_val_accuracy": metrics.get("val_accuracy"),
            "images_per_sec": round(ips) if ips else None}
