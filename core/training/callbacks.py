"""The callbacks the engine ships (as in Lightning): the engine calls them and knows no UI.

Reports (rank 0):

- ``RunFiles`` appends to ``metrics.jsonl`` and rewrites ``status.json`` atomically;
- ``RunDatabase`` keeps the run's row (status, summary metrics) current;
- ``ConsoleProgress`` prints lines on stderr for the CLI.

Run behaviour (``train_run`` installs them for every run):

- ``Checkpointing`` saves ``best.pt`` and ``last.pt`` after each epoch and ``last.pt`` on
  a stop (the mid-epoch ``last.pt`` is the loop's, as it needs the partial sums);
- ``EarlyStopping`` ends the run after N epochs without a better validation accuracy;
- ``ValPredictions`` writes the best model's softmax rows on the validation split, for
  label review (``predictions_val.npz``).

The hooks are documented on ``Callback`` (``core.training.trainer``).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.store.run_paths import RunPaths
from core.store.workspace import Workspace, atomic_write_bytes, atomic_write_text
from core.training.checkpoint import load_checkpoint
from core.training.loop import cached_head_probs, predict_probs
from core.training.trainer import Callback, CallbackList, Trainer

__all__ = ["Callback", "CallbackList", "Checkpointing", "ConsoleProgress", "EarlyStopping",
           "RunDatabase", "RunFiles", "ValPredictions", "write_val_predictions"]


class RunFiles(Callback):
    """The run folder's ``metrics.jsonl`` (one line per logging step and epoch) and
    ``status.json`` (what the run is doing now)."""

    def __init__(self, run_dir: Path):
        self.paths = RunPaths(run_dir)
        self.status: dict = {}

    def _write_status(self, **changes) -> None:
        self.status.update(changes, updated_at=time.time())
        atomic_write_text(self.paths.status, json.dumps(self.status))

    def _append(self, record: dict) -> None:
        with open(self.paths.metrics, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_start(self, info: dict) -> None:
        """Trim ``metrics.jsonl`` back to the resume point (all of it on a fresh start) and mark
        the status running."""
        resumed = bool(info.get("resumed"))
        self._trim_metrics(info.get("resume_global_step", 0) if resumed else 0,
                           info.get("resume_epoch", 0) if resumed else 0)
        self._write_status(status="running", message="", **info)

    def _trim_metrics(self, global_step: int, epoch: int) -> None:
        """Forget records after the checkpoint being (re)started from: a killed trainer may
        have logged steps it never saved, and a restart from scratch begins a new curve."""
        path = self.paths.metrics
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("type") == "step" and r.get("global_step", 0) <= global_step:
                kept.append(line)
            elif r.get("type") == "epoch" and r.get("epoch", 0) < epoch:
                kept.append(line)
            elif r.get("type") not in ("step", "epoch") and global_step:
                kept.append(line)
        atomic_write_text(path, "".join(k + "\n" for k in kept))

    def on_step(self, m: dict) -> None:
        """Append the step record to ``metrics.jsonl`` and update ``status.json``'s progress, speed
        and ETA."""
        self._append({"type": "step", **m})
        self._write_status(epoch=m["epoch"], step=m["step"], images_per_sec=m["images_per_sec"],
                           eta_s=m["eta_s"], progress=m["progress"], lr=m["lr"])

    def on_epoch_end(self, m: dict) -> None:
        """Append the epoch record and put it in ``status.json`` as ``last``, with the best
        validation accuracy."""
        self._append({"type": "epoch", **m})
        self._write_status(epoch=m["epoch"] + 1, step=0, images_per_sec=m["images_per_sec"],
                           eta_s=m["eta_s"], progress=m["progress"], last=m,
                           best_val_accuracy=m["best_val_accuracy"])

    def on_end(self, summary: dict) -> None:
        """Write the final status, message and summary to ``status.json``."""
        self._write_status(status=summary["status"], message=summary.get("message", ""),
                           summary=summary, eta_s=0)


class RunDatabase(Callback):
    """The run's row: running with its pid, summary metrics per epoch, the final status."""

    def __init__(self, ws: Workspace, run_id: str):
        self.ws, self.run_id = ws, run_id

    def on_start(self, info: dict) -> None:
        """Mark the run's row running, with its pid (``started_at`` is kept from a first start)."""
        with self.ws.write() as conn:
            conn.execute("UPDATE runs SET status='running', pid=?, message='', "
                         "started_at=COALESCE(started_at, ?) WHERE id=?",
                         (info.get("pid"), time.time(), self.run_id))

    def on_epoch_end(self, m: dict) -> None:
        """Store the epoch's summary metrics (losses, accuracies, speed, epochs done, the epoch of
        ``best.pt``) on the row."""
        metrics = {k: m[k] for k in ("epoch", "val_accuracy", "val_loss", "train_loss",
                                     "train_accuracy", "best_val_accuracy", "images_per_sec",
                                     "seconds")}
        metrics["epochs"] = m["epoch"] + 1
        metrics["best_epoch"] = m["best_epoch"] + 1   # counted from 1, as in run_summary
        with self.ws.write() as conn:
            conn.execute("UPDATE runs SET metrics_json=? WHERE id=?",
                         (json.dumps(metrics), self.run_id))

    def on_end(self, summary: dict) -> None:
        """Store the final status, message, summary metrics and finish time on the row."""
        with self.ws.write() as conn:
            conn.execute("UPDATE runs SET status=?, message=?, metrics_json=?, finished_at=? "
                         "WHERE id=?", (summary["status"], summary.get("message", ""),
                                        json.dumps(summary.get("metrics", {})), time.time(),
                                        self.run_id))


class ConsoleProgress(Callback):
    """Human progress lines on stderr (a step line at most every ``every`` seconds)."""

    def __init__(self, stream=None, every: float = 2.0):
        self.stream = stream or sys.stderr
        self.every, self._last = every, 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_start(self, info: dict) -> None:
        """Print one line naming the run, its data, image size, device, precision and length."""
        self._print(f"run {info['run_id']}: {info['arch']} on {info['dataset']} "
                    f"({info['num_train']} train / {info['num_val']} val images, "
                    f"{info['image_size']} px, {info['device']}, {info['precision']}), "
                    f"{info['epochs']} epochs × {info['steps_per_epoch']} steps")

    def on_step(self, m: dict) -> None:
        """Print the step's loss, learning rate, speed and ETA, at most once per ``every``
        seconds."""
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        self._print(f"  epoch {m['epoch'] + 1} step {m['step']}: loss {m['loss']:.4f} "
                    f"lr {m['lr']:.3g} · {m['images_per_sec']:.0f} img/s · ETA {m['eta_s']:.0f}s")

    def on_epoch_end(self, m: dict) -> None:
        """Print the epoch's train and validation loss and accuracy, speed and duration."""
        self._print(f"epoch {m['epoch'] + 1}/{m['epochs']}: train loss {m['train_loss']:.4f} "
                    f"acc {m['train_accuracy']:.4f} · val loss {m['val_loss']:.4f} "
                    f"acc {m['val_accuracy']:.4f} · {m['images_per_sec']:.0f} img/s · "
                    f"{m['seconds']:.1f}s")

    def on_end(self, summary: dict) -> None:
        """Print how the run ended, with its message if any."""
        self._print(f"run {summary['run_id']} {summary['status']}"
                    + (f": {summary['message']}" if summary.get("message") else ""))


class Checkpointing(Callback):
    """``best.pt`` when the validation accuracy improved and ``last.pt`` after every epoch;
    ``last.pt`` when the run stops. Runs on every rank (only rank 0 writes)."""

    rank_zero_only = False

    def on_validation_end(self, trainer: Trainer, record: dict) -> None:
        """Save ``best.pt`` when this epoch is the best so far, then ``last.pt``."""
        if record["best_epoch"] == record["epoch"]:
            trainer.save("best")
        trainer.save("last")

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        """Save ``last.pt`` when the run was stopped, so Resume continues from here."""
        if status == "stopped":
            trainer.save("last")


class EarlyStopping(Callback):
    """End the run after ``patience`` epochs without a better validation accuracy
    (0: never). Runs on every rank, so all of them stop together."""

    rank_zero_only = False

    def __init__(self, patience: int):
        self.patience = patience

    def on_validation_end(self, trainer: Trainer, record: dict) -> None:
        """Set ``trainer.stop_reason`` to ``early_stopped`` once ``patience`` epochs passed without
        a better validation accuracy."""
        if self.patience and trainer.epochs_since_best >= self.patience:
            trainer.stop_reason = "early_stopped"


class ValPredictions(Callback):
    """When the run finishes (or stops early for no progress), write the best model's
    validation predictions to ``path`` for label review."""

    def __init__(self, path: Path):
        self.path = path

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        """Write the validation predictions when the run finished or stopped early (not when
        stopped by the user)."""
        if status in ("finished", "early_stopped"):
            write_val_predictions(trainer, self.path)


@torch.inference_mode()
def write_val_predictions(t: Trainer, path: Path) -> None:
    """Softmax rows of the best model on the validation split (held out: never trained on),
    for label review: ``image_ids``, ``probs``, ``class_names``, ``source='val'``,
    ``label_version``."""
    model = t.bare_model
    split = t.data.val
    best = load_checkpoint(t.paths.best, t.device)["model"] \
        if t.paths is not None and t.paths.best.exists() else None
    probs = cached_head_probs(t, best or model.state_dict(), split)
    if probs is None:                 # the pixel path: the whole best model on every image
        if best is not None:
            model.load_state_dict(best)
        probs = predict_probs(t, model, split)
    buf = io.BytesIO()
    np.savez(buf, image_ids=split.image_ids, probs=probs.numpy().astype(np.float32),
             class_names=np.array(t.data.class_names, dtype=str), source=np.array("val"),
             label_version=np.array(t.data.label_version, dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())
