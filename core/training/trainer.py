"""The trainer's state and its callback hooks.

``Trainer`` holds everything one training run has in memory (data, model, optimizer,
augmentation, progress) and its checkpoint form (``state``/``save``/``restore``): a
checkpoint holds the model, optimizer, scaler, epoch, step, RNG states and the partial
epoch's sums, so a resumed run continues from exactly that step.

``Callback`` is the only way other code takes part in training (as in Lightning): progress
reporting, checkpoints, early stopping, label-review predictions and fine-tuning are all
callbacks. The engine calls the hooks below and knows nothing else about them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import ImageLabError
from core.store.run_paths import RunPaths
from core.store.workspace import Workspace
from core.training.checkpoint import save_checkpoint
from core.training.config import TrainConfig
from core.training.data import BatchAugment, TrainingData
from core.training.ddp import DistContext

CHECKPOINT_FORMAT = 1


class Callback:
    """Hooks into training; every one is a no-op here, override the ones you need.

    Two kinds of hook:

    - trainer hooks get the ``Trainer`` and may change it: ``setup``,
      ``on_train_epoch_start``, ``on_validation_end``, ``on_fit_end``;
    - report hooks get plain dicts: ``on_start``, ``on_step``, ``on_epoch_end``,
      ``on_checkpoint``, ``on_end``.

    Under DDP, ``train_run`` gives a callback to rank 0 only unless its ``rank_zero_only``
    is False (set it False for callbacks that change training: every rank must run them).
    ``config_sections`` names the ``TrainConfig`` sections a callback applies (e.g.
    ``"finetune"``): ``build_trainer`` refuses a config with a section no callback applies.
    """

    rank_zero_only: bool = True
    config_sections: tuple[str, ...] = ()

    def setup(self, trainer: Trainer) -> None:
        """Once, when ``build_trainer`` has assembled ``trainer``: before a resume restores
        a checkpoint and before any step. May replace the weights, optimizer or augmentation."""

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        """After ``model.train()``, before the first step of every epoch (also when a resumed
        run continues in the middle of one): e.g. freeze layer groups."""

    def on_validation_end(self, trainer: Trainer, record: dict) -> None:
        """After each epoch's validation, on every rank, with ``trainer.epoch`` already
        advanced and the best so far updated. May save checkpoints or set
        ``trainer.stop_reason`` to end the run after this epoch."""

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        """When ``fit`` ends: ``status`` is finished, early_stopped or stopped."""

    def on_start(self, info: dict) -> None:
        """The run starts (or resumes): run id, dataset, device, sizes, resume point."""

    def on_step(self, m: dict) -> None:
        """A logging step: epoch, step, loss, lr, images/s, ETA, progress."""

    def on_epoch_end(self, m: dict) -> None:
        """The epoch record (train and val loss and accuracy, speed, best so far); rank 0."""

    def on_checkpoint(self, path: Path, kind: str) -> None:
        """A checkpoint was written: ``kind`` is ``last`` or ``best``."""

    def on_end(self, summary: dict) -> None:
        """The run ended (finished, stopped or failed) with this summary."""


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def __iter__(self):
        return iter(self.callbacks)

    def _each(self, name: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, name)(*args)

    def setup(self, trainer):
        """Call every callback's ``setup``, in order."""
        self._each("setup", trainer)

    def on_train_epoch_start(self, trainer):
        """Call every callback's ``on_train_epoch_start``, in order."""
        self._each("on_train_epoch_start", trainer)

    def on_validation_end(self, trainer, record):
        """Call every callback's ``on_validation_end``, in order."""
        self._each("on_validation_end", trainer, record)

    def on_fit_end(self, trainer, status):
        """Call every callback's ``on_fit_end``, in order."""
        self._each("on_fit_end", trainer, status)

    def on_start(self, info):
        """Call every callback's ``on_start``, in order."""
        self._each("on_start", info)

    def on_step(self, m):
        """Call every callback's ``on_step``, in order."""
        self._each("on_step", m)

    def on_epoch_end(self, m):
        """Call every callback's ``on_epoch_end``, in order."""
        self._each("on_epoch_end", m)

    def on_checkpoint(self, path, kind):
        """Call every callback's ``on_checkpoint``, in order."""
        self._each("on_checkpoint", path, kind)

    def on_end(self, summary):
        """Call every callback's ``on_end``, in order."""
        self._each("on_end", summary)


@dataclass
class Trainer:
    """One run in memory: built by ``build_trainer``, driven by ``fit`` (or by hand:
    ``train_one_epoch`` and ``evaluate``), and saved/restored as a checkpoint."""

    cfg: TrainConfig
    data: TrainingData
    model: torch.nn.Module            # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scaler: object                    # torch.amp.GradScaler for fp16, else None
    autocast: object                  # () -> autocast context
    augment: BatchAugment
    criterion: torch.nn.Module
    device: torch.device
    dist: DistContext
    aug_rng: torch.Generator
    steps_per_epoch: int
    run_dir: Path | None = None
    callbacks: CallbackList = field(default_factory=lambda: CallbackList([]))
    sampler_weights: torch.Tensor | None = None
    ws: Workspace | None = None       # the workspace the data came from (for callbacks)
    stop_flag: bool = False           # set by SIGTERM: stop at the next step
    stop_reason: str = ""             # set by a callback: end the run after this epoch
    # Set by a callback (fine-tuning's feature cache, core.finetune.feature_cache): an object
    # with ``module`` (the model's last layer) and ``batch(t, split, idx, train=)`` (that
    # layer's inputs for those images). While set, steps and validation run ``module`` on
    # them instead of the whole model on pixels; None: the pixel path.
    head_inputs: object = None
    record_extras: dict = field(default_factory=dict)   # callbacks' keys for the epoch record
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
    paths: RunPaths | None = field(init=False, default=None, repr=False)   # of run_dir
    # The STOP file this process polls at every step: rank 0's only, named once here.
    _stop_file: Path | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.paths = RunPaths(self.run_dir) if self.run_dir is not None else None
        self._stop_file = self.paths.stop if self.paths is not None and self.dist.is_main \
            else None

    @property
    def bare_model(self) -> torch.nn.Module:
        """The model without its DDP wrapper."""
        return getattr(self.model, "module", self.model)

    @property
    def global_batch(self) -> int:
        """Images per step over all processes."""
        return self.cfg.batch_size * self.dist.world

    def stop_requested(self) -> bool:
        """A SIGTERM or the run folder's STOP file (on any rank, under DDP)."""
        local = self.stop_flag or (self._stop_file is not None and self._stop_file.exists())
        return self.dist.any_flag(local, self.device) if self.dist.enabled else local

    def state(self) -> dict:
        """The checkpoint: everything a resume needs to continue at exactly this step."""
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
        """Write the checkpoint ``best`` or ``last`` into the run folder (rank 0 only;
        nothing without a run folder)."""
        if self.paths is None or not self.dist.is_main:
            return
        path = self.paths.checkpoint(name)
        save_checkpoint(self.state(), path)
        self.last_save = time.monotonic()
        self.callbacks.on_checkpoint(path, path.stem)

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint of this run; refuses one made on other data."""
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
