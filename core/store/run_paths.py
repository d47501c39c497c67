"""Where every file of a run lives, and a run's one-line summary: the run registry's
plain parts, free of torch so that overviews (the Home page) stay light.

A run folder ``runs/<id>/`` holds:

- ``config.json``: the resolved ``TrainConfig``; ``classes.json``: the class names;
- ``status.json`` (rewritten atomically), ``metrics.jsonl`` (appended), ``log.txt``
  (the process's output), ``STOP`` while a stop is requested;
- ``last.pt``, ``best.pt``; fine-tuning runs also ``init.pt`` and ``finetune.json``;
- ``predictions_val.npz`` (held-out predictions for label review), ``calibration.json``
  (the fitted temperature), ``eval/<dataset>-<split>.json`` and ``.npz`` (stored reports);
- ``service/predictions.jsonl``: the prediction service's log.

Code names these files through ``RunPaths``, never as string literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.store.workspace import Workspace


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

    def checkpoint(self, name: str) -> Path:
        """``best`` or ``last`` (or ``init``) as its ``.pt`` file."""
        return self.folder / f"{name.removesuffix('.pt')}.pt"


def run_paths(ws: Workspace, run_id: str) -> RunPaths:
    """The files of run ``run_id`` in workspace ``ws``."""
    return RunPaths(ws.runs_dir / run_id)


def summary_row(*, run_id: str, dataset: str | None, kind: str | None, status: str,
                config: dict, metrics: dict, name: str | None = None) -> dict:
    """One run as a table row, the same on the Home page, the Train page and ``runs list``:
    run, name, dataset, kind, model, status, epochs done/planned, last and best validation
    accuracy (of ``best.pt``), images per second."""
    ips = metrics.get("images_per_sec")
    return {"run": run_id, "name": name or "", "dataset": dataset, "kind": kind or "train",
            "model": config.get("arch"), "status": status,
            "epochs": f"{metrics.get('epochs', 0)}/{config.get('epochs', '?')}",
            "val_accuracy": metrics.get("val_accuracy"),
            "best_val_accuracy": metrics.get("best_val_accuracy"),
            "images_per_sec": round(ips) if ips else None}
