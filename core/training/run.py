"""A whole run: build the trainer, fit it, record the outcome.

``train_run(ws, run_id)`` runs (or resumes) a run whose folder and row exist: it builds
the data, model, optimiser and schedule (``build_trainer``), then ``fit`` loops
``train_one_epoch`` and ``end_epoch`` until the last epoch, a stop request or early
stopping. Its callbacks write the run's files and row, checkpoints and the label-review
predictions; a fine-tuning run also needs the fine-tuning callback, which whoever starts
it passes in (``core.finetune.callback.FineTuning``): the engine knows only callbacks.

Stopping: a ``STOP`` file in the run folder (or SIGTERM) is checked at every step; the
run saves ``last.pt`` and a resumed run continues from exactly that step. The epoch's
batch order is a function of (seed, epoch), so it needs no saving.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import torch

from core.device import pick_device
from core.errors import ImageLabError
from core.models import create_model
from core.store.run_paths import RunPaths, run_paths
from core.store.workspace import Workspace
from core.training.callbacks import (
    Callback,
    CallbackList,
    Checkpointing,
    EarlyStopping,
    RunDatabase,
    RunFiles,
    ValPredictions,
)
from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.data import BatchAugment, class_weights, load_training_data, sample_weights
from core.training.ddp import DistContext
from core.training.loop import autocast_for, end_epoch, train_one_epoch
from core.training.optim import build_optimizer
from core.training.runs import load_run_config
from core.training.trainer import Trainer

# Config sections the engine does not apply itself: a callback must (``config_sections``).
CALLBACK_SECTIONS = ("finetune",)


def configure_threads(cfg: TrainConfig, world: int = 1) -> None:
    """CPU threads: the configured number, else the cores shared by the processes."""
    n = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(n)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch; deterministic algorithms when asked, else cuDNN's autotuner."""
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def build_trainer(ws: Workspace, cfg: TrainConfig, *, dist: DistContext | None = None,
                  run_dir: Path | None = None,
                  callbacks: list[Callback] | CallbackList | None = None,
                  progress=None) -> Trainer:
    """A ready ``Trainer`` for a resolved ``cfg`` (``prepare_config``): data on the device,
    model, optimizer, precision, augmentation, loss and sampler; then every callback's
    ``setup`` (fine-tuning loads its weights and per-group optimizer there).

    ``run_dir`` is where checkpoints go (None: nowhere, e.g. for an estimate);
    ``progress`` reports the data loading. A config section that no callback applies
    (``Callback.config_sections``, e.g. ``finetune``) is refused rather than ignored.
    """
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks or [])
    for section in CALLBACK_SECTIONS:
        if getattr(cfg, section) and not any(section in c.config_sections for c in cb):
            raise ImageLabError(f"this config has a {section!r} section but no callback "
                                f"applies it: pass the fine-tuning callback "
                                "(core.finetune.callback.FineTuning)")
    dist = dist or DistContext()
    configure_threads(cfg, dist.world)
    seed_everything(cfg.seed, cfg.deterministic)
    device = dist.device(pick_device(cfg.device))
    data = load_training_data(ws, cfg.dataset, cfg.image_size, device, progress=progress,
                              label_version=cfg.label_version)
    if cfg.batch_size * dist.world > len(data.train):
        raise ImageLabError(f"batch size {cfg.batch_size}"
                            + (f" × {dist.world} processes" if dist.enabled else "")
                            + f" is larger than the {len(data.train)} training images of "
                            f"{cfg.dataset!r}; choose a smaller batch size")
    model = create_model(cfg.arch, len(data.class_names), data.channels, cfg.image_size)
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last
                     else torch.contiguous_format)
    optimizer = build_optimizer(model, cfg)
    autocast, scaler = autocast_for(cfg, device)
    weights = class_weights(data.train_counts).to(device) \
        if cfg.balance == "class_weights" else None
    criterion = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    sampler = sample_weights(data.train.labels, len(data.class_names)) \
        if cfg.balance == "sampler" else None
    aug_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    t = Trainer(cfg=cfg, data=data, model=dist.wrap(model, device), optimizer=optimizer,
                scaler=scaler, autocast=autocast,
                augment=BatchAugment(cfg, data.mean, data.std, data.channels),
                criterion=criterion, device=device, dist=dist, aug_rng=aug_rng,
                steps_per_epoch=len(data.train) // (cfg.batch_size * dist.world),
                run_dir=run_dir, callbacks=cb, sampler_weights=sampler, ws=ws)
    cb.setup(t)
    return t


def fit(t: Trainer) -> str:
    """Train until the last epoch, a stop request, or a callback's ``stop_reason`` (early
    stopping). Returns the status: finished, stopped or early_stopped."""
    status = "finished"
    while t.epoch < t.cfg.epochs:
        if not train_one_epoch(t):
            status = "stopped"
            break
        end_epoch(t)
        if t.stop_reason:
            status = t.stop_reason
            break
    t.callbacks.on_fit_end(t, status)
    return status


def run_callbacks(ws: Workspace, run_id: str, cfg: TrainConfig, run_dir: Path,
                  dist: DistContext, extra: list[Callback]) -> CallbackList:
    """A run's callbacks: its files and row, the caller's, checkpoints, early stopping and
    the label-review predictions. Rank 0 gets them all, other ranks only those that are
    not ``rank_zero_only``."""
    cbs = [RunFiles(run_dir), RunDatabase(ws, run_id), *extra, Checkpointing(),
           EarlyStopping(cfg.early_stopping), ValPredictions(RunPaths(run_dir).predictions_val)]
    return CallbackList(cbs if dist.is_main else [c for c in cbs if not c.rank_zero_only])


def train_run(ws: Workspace, run_id: str, *, resume: bool = False,
              callbacks: list[Callback] | None = None, dist: DistContext | None = None,
              progress=None) -> dict:
    """Run (or resume) a run whose folder and row exist; returns its summary.

    The run's status, metrics and checkpoints go to its folder and its database row
    (from rank 0 only). ``callbacks`` are added to the run's own (a fine-tuning run needs
    ``FineTuning()`` among them). A user error is recorded as ``failed`` with its message,
    then raised again.
    """
    dist = dist or DistContext()
    paths = run_paths(ws, run_id)
    run_dir = paths.folder
    cfg = load_run_config(run_dir)
    cb = run_callbacks(ws, run_id, cfg, run_dir, dist, list(callbacks or []))
    if dist.is_main:
        paths.stop.unlink(missing_ok=True)
    t = None
    started = time.time()
    try:
        dist.init(pick_device(cfg.device).split(":")[0])
        t = build_trainer(ws, cfg, dist=dist, run_dir=run_dir, callbacks=cb, progress=progress)
        if resume:
            if not paths.last.exists():
                raise ImageLabError(f"run {run_id} has no checkpoint to resume from "
                                    "(it stopped before its first step); start a new run")
            t.restore(load_checkpoint(paths.last, map_location=t.device))
        cb.on_start({"run_id": run_id, "pid": os.getpid(), "dataset": cfg.dataset,
                     "arch": cfg.arch, "device": str(t.device), "precision": cfg.precision,
                     "image_size": cfg.image_size, "epochs": cfg.epochs,
                     "steps_per_epoch": t.steps_per_epoch, "num_train": len(t.data.train),
                     "num_val": len(t.data.val), "world_size": dist.world,
                     "batch_size": cfg.batch_size, "resumed": resume, "started_at": started,
                     "resume_epoch": t.epoch,
                     "resume_global_step": t.epoch * t.steps_per_epoch + t.step})
        with sigterm_stops(t):
            status = fit(t)
        message = {"stopped": f"stopped at epoch {t.epoch + 1}, step {t.step}; resume to continue",
                   "early_stopped": f"early stopping: no better validation accuracy for "
                                    f"{cfg.early_stopping} epochs"}.get(status, "")
        status = "finished" if status == "early_stopped" else status
    except ImageLabError as exc:
        _fail(cb, run_id, t, str(exc))
        raise
    except Exception as exc:
        _fail(cb, run_id, t, f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        if dist.is_main:
            paths.stop.unlink(missing_ok=True)
    summary = run_summary(run_id, status, message, t)
    cb.on_end(summary)
    return summary


def run_summary(run_id: str, status: str, message: str, t: Trainer | None) -> dict:
    """The summary ``train_run`` returns and records: status, message, final metrics."""
    last = t.history[-1] if t and t.history else {}
    metrics = {"val_accuracy": last.get("val_accuracy"), "val_loss": last.get("val_loss"),
               "train_accuracy": last.get("train_accuracy"), "train_loss": last.get("train_loss"),
               "best_val_accuracy": t.best_val_accuracy if t and t.best_epoch >= 0 else None,
               "best_epoch": (t.best_epoch + 1) if t and t.best_epoch >= 0 else None,
               "epochs": t.epoch if t else 0, "seconds": round(t.seconds, 3) if t else 0.0,
               "images_per_sec": last.get("images_per_sec")}
    return {"run_id": run_id, "status": status, "message": message, "metrics": metrics}


def _fail(cb: Callback, run_id: str, t: Trainer | None, message: str) -> None:
    with contextlib.suppress(Exception):
        cb.on_end(run_summary(run_id, "failed", message, t))


@contextlib.contextmanager
def sigterm_stops(t: Trainer):
    """SIGTERM asks for a stop at the next step boundary (with a checkpoint); signal
    handlers can only be set from the main thread, elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        t.stop_flag = True
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
