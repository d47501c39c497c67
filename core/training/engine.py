"""The training engine: one run from its folder's config to its checkpoints and metrics.

``train_run(ws, run_id)`` builds the data, model, optimiser and schedule, then loops
``train_one_epoch`` and ``evaluate``. Speed: the data sits on the device as uint8,
batches are augmented there, the model runs channels_last under autocast (bf16 where the
hardware has it, fp16 with a GradScaler otherwise), and the loop reads a number back from
the device only at logging steps.

Stopping: a ``STOP`` file in the run folder (or SIGTERM) is checked at every step; the
run saves ``last.pt`` — model, optimiser, scaler, epoch, step, RNG states and the partial
epoch's sums — and a resumed run continues from exactly that step. The epoch's batch order
is a function of (seed, epoch), so it needs no saving.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from core.device import pick_device
from core.errors import ImageLabError
from core.models import create_model
from core.store.workspace import Workspace
from core.training.callbacks import Callback, CallbackList, RunDatabase, RunFiles
from core.training.checkpoint import load_checkpoint, save_checkpoint
from core.training.config import TrainConfig
from core.training.data import (BatchAugment, TrainingData, class_weights, epoch_order,
                                load_training_data, sample_weights)
from core.training.ddp import DistContext
from core.training.runs import get_run, load_run_config, run_folder

STOP_FILE = "STOP"
CHECKPOINT_FORMAT = 1
# A mid-epoch last.pt at most this often, so a killed trainer loses at most this much work.
CHECKPOINT_EVERY_S = float(os.environ.get("IMAGELAB_CHECKPOINT_EVERY_S", "60"))


class StopRequested(Exception):
    pass


# ---------------------------------------------------------------- building blocks

def configure_threads(cfg: TrainConfig, world: int = 1) -> None:
    n = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(n)


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def autocast_for(cfg: TrainConfig, device: torch.device):
    """(autocast context factory, GradScaler or None) for the configured precision."""
    if cfg.precision == "fp32" or device.type == "mps" and cfg.precision == "bf16":
        return (lambda: contextlib.nullcontext()), None
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """No weight decay on biases and BatchNorm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return optimizer_for(groups, cfg)


def optimizer_for(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over the given param groups."""
    if cfg.optimizer in ("sgd", "nesterov"):
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.optimizer == "nesterov")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The schedule: a multiplier of the peak learning rate at global ``step``."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round((cfg.warmup_epochs or 0) * steps_per_epoch))
    if cfg.schedule == "onecycle":
        warm = max(1, warm)
        if step < warm:
            return 0.04 + 0.96 * step / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * p))
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        p = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * p))
    if cfg.schedule == "step":
        every = cfg.step_epochs or max(1, cfg.epochs // 3)
        return cfg.step_gamma ** (step // (every * steps_per_epoch))
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate; a group's ``lr_mult`` (fine-tuning's per-layer rates) scales it."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


# ---------------------------------------------------------------- the trainer

@dataclass
class Trainer:
    cfg: TrainConfig
    data: TrainingData
    model: torch.nn.Module            # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scaler: object
    autocast: object
    augment: BatchAugment
    criterion: torch.nn.Module
    device: torch.device
    dist: DistContext
    aug_rng: torch.Generator
    steps_per_epoch: int
    run_dir: Path | None = None
    callbacks: Callback = field(default_factory=Callback)
    sampler_weights: torch.Tensor | None = None
    epoch_start: object = None        # called as epoch_start(t) after model.train() (fine-tuning)
    stop_flag: bool = False
    # progress
    epoch: int = 0
    step: int = 0                     # next step within the epoch
    best_val_accuracy: float = -1.0
    best_epoch: int = -1
    epochs_since_best: int = 0
    seconds: float = 0.0              # training wall time, over all sessions
    accum: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    last_save: float = field(default_factory=time.monotonic)   # for mid-epoch checkpoints

    @property
    def bare_model(self) -> torch.nn.Module:
        return getattr(self.model, "module", self.model)

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.dist.world

    def stop_requested(self) -> bool:
        local = self.stop_flag or (self.run_dir is not None and self.dist.is_main
                                   and (self.run_dir / STOP_FILE).exists())
        return self.dist.any_flag(local, self.device) if self.dist.enabled else local

    # -- checkpoints
    def state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model": self.bare_model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "epoch": self.epoch, "step": self.step,
                "best_val_accuracy": self.best_val_accuracy, "best_epoch": self.best_epoch,
                "epochs_since_best": self.epochs_since_best, "seconds": self.seconds,
                "accum": dict(self.accum), "history": list(self.history),
                "rng_cpu": torch.get_rng_state(), "aug_rng": self.aug_rng.get_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "fingerprint": self.data.fingerprint, "label_version": self.data.label_version,
                "class_names": self.data.class_names, "config": self.cfg.to_dict(),
                "mean": self.data.mean, "std": self.data.std}

    def save(self, name: str) -> None:
        if self.run_dir is None or not self.dist.is_main:
            return
        path = self.run_dir / name
        save_checkpoint(self.state(), path)
        self.last_save = time.monotonic()
        self.callbacks.on_checkpoint(path, name.removesuffix(".pt"))

    def restore(self, ckpt: dict) -> None:
        if ckpt.get("fingerprint") != self.data.fingerprint:
            raise ImageLabError(
                f"dataset {self.cfg.dataset!r} changed since this run started (label version "
                f"{ckpt.get('label_version')} → {self.data.label_version}; images, labels or "
                "splits differ): resuming would mix two datasets — start a new run instead")
        self.bare_model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        for k in ("epoch", "step", "best_val_accuracy", "best_epoch", "epochs_since_best",
                  "seconds", "accum", "history"):
            setattr(self, k, ckpt[k])
        torch.set_rng_state(ckpt["rng_cpu"])
        self.aug_rng.set_state(ckpt["aug_rng"])
        if self.device.type == "cuda" and ckpt.get("rng_cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


def train_one_epoch(t: Trainer) -> bool:
    """Train from step ``t.step`` to the end of epoch ``t.epoch``; False when stopped."""
    cfg, model, data = t.cfg, t.model, t.data
    model.train()
    if t.epoch_start is not None:     # e.g. freeze/unfreeze layer groups, frozen BatchNorm in eval
        t.epoch_start(t)
    order = epoch_order(len(data.train), t.epoch, cfg.seed, t.sampler_weights)
    log_every = cfg.log_every or max(1, t.steps_per_epoch // 10)
    a = t.accum or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    loss_sum = torch.zeros((), device=t.device)
    correct = torch.zeros((), device=t.device, dtype=torch.int64)
    seen, t0 = 0, time.perf_counter()
    while t.step < t.steps_per_epoch:
        if t.stop_requested():
            _flush(t, a, loss_sum, correct, seen, t0)
            return False
        start = t.step * t.global_batch + t.dist.rank * cfg.batch_size
        idx = order[start:start + cfg.batch_size]
        x = t.augment(data.train.batch(idx, t.device), t.aug_rng)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = data.train.labels[idx.to(data.train.labels.device)]
        lr = cfg.lr * lr_factor(cfg, t.epoch * t.steps_per_epoch + t.step, t.steps_per_epoch)
        set_lr(t.optimizer, lr)
        with t.autocast():
            logits = model(x)
            loss = t.criterion(logits.float(), y)
        t.optimizer.zero_grad(set_to_none=True)
        if t.scaler is not None:
            t.scaler.scale(loss).backward()
            t.scaler.unscale_(t.optimizer)
        else:
            loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if t.scaler is not None:
            t.scaler.step(t.optimizer)
            t.scaler.update()
        else:
            t.optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(idx)
        t.step += 1
        if t.step % log_every == 0 or t.step == t.steps_per_epoch:
            step_loss = float(loss.detach())
            if not math.isfinite(step_loss):
                raise ImageLabError(
                    f"the loss became {step_loss} at epoch {t.epoch + 1}, step {t.step}: "
                    f"training stopped. Try a lower learning rate (it was {lr:.3g}), gradient "
                    "clipping, or fp32 precision")
            elapsed = a["seconds"] + time.perf_counter() - t0
            ips = (a["seen"] + seen) * t.dist.world / max(elapsed, 1e-9)
            t.callbacks.on_step(_step_record(t, step_loss, lr, ips))
            if (t.step < t.steps_per_epoch
                    and time.monotonic() - t.last_save >= CHECKPOINT_EVERY_S):
                _flush(t, a, loss_sum, correct, seen, t0)   # the sums so far go into the checkpoint
                t.save("last.pt")
                a = t.accum
                loss_sum.zero_()
                correct.zero_()
                seen, t0 = 0, time.perf_counter()
    _flush(t, a, loss_sum, correct, seen, t0)
    return True


def _flush(t: Trainer, a: dict, loss_sum, correct, seen: int, t0: float) -> None:
    """Fold this session's sums into ``t.accum`` (they survive a stop in the checkpoint)."""
    dt = time.perf_counter() - t0
    t.accum = {"loss": a["loss"] + float(loss_sum), "correct": a["correct"] + int(correct),
               "seen": a["seen"] + seen, "seconds": a["seconds"] + dt}
    t.seconds += dt


def _step_record(t: Trainer, loss: float, lr: float, ips: float) -> dict:
    done = t.epoch * t.steps_per_epoch + t.step
    total = t.cfg.epochs * t.steps_per_epoch
    eta = (total - done) * t.global_batch / max(ips, 1e-9)
    return {"epoch": t.epoch, "step": t.step, "global_step": done, "loss": loss, "lr": lr,
            "images_per_sec": ips, "eta_s": eta, "progress": done / total, "time": time.time()}


@torch.inference_mode()
def evaluate(t: Trainer) -> tuple[float, float]:
    """(loss, accuracy) on the validation split, summed over every rank's share."""
    model, split = t.model, t.data.val
    model.eval()
    loss_sum = torch.zeros((), device=t.device, dtype=torch.float64)
    correct = torch.zeros((), device=t.device, dtype=torch.float64)
    positions = torch.arange(t.dist.rank, len(split), t.dist.world)
    bs = max(t.cfg.batch_size, 256)
    for k in range(0, len(positions), bs):
        idx = positions[k:k + bs]
        x = t.augment(split.batch(idx, t.device), None, train=False)
        if t.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = split.labels[idx.to(split.labels.device)]
        with t.autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum().double()
    totals = t.dist.all_reduce_sum(torch.stack([loss_sum, correct]))
    return float(totals[0]) / len(split), float(totals[1]) / len(split)


def end_epoch(t: Trainer) -> dict:
    """Validate, update the best model, checkpoint, report; returns the epoch record."""
    val_loss, val_acc = evaluate(t)
    if not math.isfinite(val_loss):
        raise ImageLabError(f"the validation loss became {val_loss} at epoch {t.epoch + 1}: "
                            "training stopped. Try a lower learning rate or gradient clipping")
    a = t.accum
    world = t.dist.world
    seen = a["seen"] * world
    train_loss = a["loss"] / max(1, a["seen"])
    train_acc = a["correct"] / max(1, a["seen"])
    if t.dist.enabled:
        sums = t.dist.all_reduce_sum(torch.tensor([a["loss"], float(a["correct"])],
                                                  dtype=torch.float64, device=t.device))
        train_loss, train_acc = float(sums[0]) / seen, float(sums[1]) / seen
    improved = val_acc > t.best_val_accuracy
    if improved:
        t.best_val_accuracy, t.best_epoch, t.epochs_since_best = val_acc, t.epoch, 0
    else:
        t.epochs_since_best += 1
    ips = seen / max(a["seconds"], 1e-9)
    done_epochs = t.epoch + 1
    record = {"epoch": t.epoch, "epochs": t.cfg.epochs, "train_loss": train_loss,
              "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc,
              "lr": t.optimizer.param_groups[0]["lr"], "images_per_sec": ips,
              "epoch_seconds": a["seconds"], "seconds": t.seconds,
              "best_val_accuracy": t.best_val_accuracy, "best_epoch": t.best_epoch,
              "progress": done_epochs / t.cfg.epochs,
              "eta_s": (t.cfg.epochs - done_epochs) * t.seconds / done_epochs, "time": time.time()}
    t.history.append({k: record[k] for k in ("epoch", "train_loss", "train_accuracy", "val_loss",
                                              "val_accuracy", "images_per_sec", "seconds")})
    t.epoch, t.step, t.accum = t.epoch + 1, 0, {}
    if improved:
        t.save("best.pt")
    t.save("last.pt")
    if t.dist.is_main:
        t.callbacks.on_epoch_end(record)
    return record


# ---------------------------------------------------------------- a whole run

def build_trainer(ws: Workspace, cfg: TrainConfig, *, dist: DistContext | None = None,
                  run_dir: Path | None = None, callbacks: Callback | None = None,
                  progress=None) -> Trainer:
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
    weights = class_weights(data.train_counts).to(device) if cfg.balance == "class_weights" else None
    criterion = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    sampler = sample_weights(data.train.labels, len(data.class_names)) \
        if cfg.balance == "sampler" else None
    aug_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    t = Trainer(cfg, data, dist.wrap(model, device), optimizer, scaler, autocast,
                BatchAugment(cfg, data.mean, data.std, data.channels), criterion, device, dist,
                aug_rng, len(data.train) // (cfg.batch_size * dist.world), run_dir,
                callbacks or Callback(), sampler)
    if cfg.finetune:          # pretrained start, frozen groups, per-group LRs (core.finetune)
        from core.finetune.setup import apply_finetune
        apply_finetune(t, run_dir, ws)
    return t


def fit(t: Trainer) -> str:
    """Train until the last epoch, a stop request or early stopping. Returns the status."""
    while t.epoch < t.cfg.epochs:
        if not train_one_epoch(t):
            t.save("last.pt")
            return "stopped"
        end_epoch(t)
        if t.cfg.early_stopping and t.epochs_since_best >= t.cfg.early_stopping:
            return "early_stopped"
    return "finished"


def train_run(ws: Workspace, run_id: str, *, resume: bool = False,
              callbacks: list[Callback] | None = None, dist: DistContext | None = None,
              progress=None) -> dict:
    """Run (or resume) a run whose folder and row exist; returns its summary.

    The run's status, metrics and checkpoints go to its folder and its database row
    (from rank 0 only). A user error is recorded as ``failed`` with its message, then
    raised again.
    """
    dist = dist or DistContext()
    run_dir = run_folder(ws, run_id)
    cfg = load_run_config(run_dir)
    cbs: list[Callback] = []
    if dist.is_main:
        cbs = [RunFiles(run_dir), RunDatabase(ws, run_id)] + list(callbacks or [])
    cb = CallbackList(cbs)
    (run_dir / STOP_FILE).unlink(missing_ok=True) if dist.is_main else None
    t = None
    started = time.time()
    try:
        dist.init(pick_device(cfg.device).split(":")[0])
        t = build_trainer(ws, cfg, dist=dist, run_dir=run_dir, callbacks=cb, progress=progress)
        if resume:
            if not (run_dir / "last.pt").exists():
                raise ImageLabError(f"run {run_id} has no checkpoint to resume from "
                                    "(it stopped before its first step); start a new run")
            t.restore(load_checkpoint(run_dir / "last.pt", map_location=t.device))
        cb.on_start({"run_id": run_id, "pid": os.getpid(), "dataset": cfg.dataset,
                     "arch": cfg.arch, "device": str(t.device), "precision": cfg.precision,
                     "image_size": cfg.image_size, "epochs": cfg.epochs,
                     "steps_per_epoch": t.steps_per_epoch, "num_train": len(t.data.train),
                     "num_val": len(t.data.val), "world_size": dist.world,
                     "batch_size": cfg.batch_size, "resumed": resume, "started_at": started,
                     "resume_epoch": t.epoch,
                     "resume_global_step": t.epoch * t.steps_per_epoch + t.step})
        with _sigterm_stops(t):
            status = fit(t)
        if status in ("finished", "early_stopped") and dist.is_main:
            write_val_predictions(t, run_dir / "predictions_val.npz")
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
        (run_dir / STOP_FILE).unlink(missing_ok=True) if dist.is_main else None
    summary = _summary(run_id, status, message, t)
    cb.on_end(summary)
    return summary


@torch.inference_mode()
def write_val_predictions(t: Trainer, path: Path) -> None:
    """Softmax rows of the best model on the validation split (held out: never trained on),
    for label review: ``image_ids``, ``probs``, ``class_names``, ``source='val'``,
    ``label_version``."""
    import io

    import numpy as np

    from core.store.workspace import atomic_write_bytes
    model = t.bare_model
    if (t.run_dir / "best.pt").exists():
        model.load_state_dict(load_checkpoint(t.run_dir / "best.pt", t.device)["model"])
    model.eval()
    split, probs = t.data.val, []
    for k in range(0, len(split), 512):
        idx = torch.arange(k, min(k + 512, len(split)))
        x = t.augment(split.batch(idx, t.device), None, train=False)
        if t.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with t.autocast():
            probs.append(torch.softmax(model(x).float(), 1).cpu())
    buf = io.BytesIO()
    np.savez(buf, image_ids=split.image_ids, probs=torch.cat(probs).numpy().astype(np.float32),
             class_names=np.array(t.data.class_names, dtype=str), source=np.array("val"),
             label_version=np.array(t.data.label_version, dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())


def _summary(run_id: str, status: str, message: str, t: Trainer | None) -> dict:
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
        cb.on_end(_summary(run_id, "failed", message, t))


@contextlib.contextmanager
def _sigterm_stops(t: Trainer):
    """SIGTERM asks for a stop at the next step boundary (with a checkpoint)."""
    import threading
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


def estimate_epoch_seconds(ws: Workspace, cfg: TrainConfig, steps: int = 4) -> dict:
    """Time a few real training steps of ``cfg`` (after one warm-up step); writes no files."""
    t = build_trainer(ws, cfg)
    full = t.steps_per_epoch
    timed = min(full, steps + 1)
    t.steps_per_epoch = 1
    t0 = time.perf_counter()
    train_one_epoch(t)                         # warm-up: allocations, kernel choice
    per_step = time.perf_counter() - t0        # (the only timing when an epoch is one step)
    if timed > 1:
        t.steps_per_epoch, t.accum = timed, {}
        t0 = time.perf_counter()
        train_one_epoch(t)
        per_step = (time.perf_counter() - t0) / (timed - 1)
    t1 = time.perf_counter()
    evaluate(t)
    eval_s = time.perf_counter() - t1
    return {"seconds_per_step": per_step, "steps_per_epoch": full,
            "images_per_sec": cfg.batch_size / per_step,
            "seconds_per_epoch": per_step * full + eval_s, "eval_seconds": eval_s}
