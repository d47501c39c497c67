"""``TrainConfig``: every option of a training run, and the defaults that adapt to the data.

A config may leave options as ``None`` (or ``"auto"``): ``resolve_config`` fills them from
the dataset (image size, channels, counts, balance) and the device, so a user who only
presses Train gets a strong model. The resolved config is what a run stores, as JSON, in
``runs/<id>/config.json``; the CLI also accepts it as YAML (``--config FILE.yaml``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from core.errors import ImageLabError

OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BALANCE = ("auto", "none", "class_weights", "sampler")
CROPS = ("auto", "translate", "resized_crop", "none")


@dataclass
class TrainConfig:
    """Every option of a training run; ``None`` or ``"auto"`` means "choose for me".

    ``resolve_config`` fills those from the dataset and device; ``validate`` checks the ranges.
    Learning rates are peak values, ``*_epochs`` count epochs, ``rotation`` is in degrees."""
    dataset: str = ""
    label_version: int | None = None    # None: the current labels; else a past label version
    arch: str = "auto"                  # see core.models.list_archs()
    image_size: int | None = None       # None: from the dataset's images
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None             # peak learning rate
    weight_decay: float | None = None
    optimizer: str = "auto"             # sgd | nesterov | adam | adamw
    momentum: float = 0.9
    schedule: str = "onecycle"          # onecycle | cosine | step | constant
    warmup_epochs: float | None = None  # linear warm-up (onecycle: its rising phase)
    step_epochs: int = 0                # step schedule: decay every N epochs (0: a third of the run)
    step_gamma: float = 0.1
    label_smoothing: float = 0.1
    grad_clip: float = 0.0              # max gradient norm; 0 = off
    early_stopping: int = 0             # stop after N epochs without a better val accuracy; 0 = off
    # augmentation (per sample, on whole batches, on the training device)
    crop: str = "auto"                  # translate | resized_crop | none
    translate: float = 0.1              # fraction of the side, for crop=translate
    crop_scale: float = 0.6             # smallest area fraction, for crop=resized_crop
    flip: bool | None = None            # horizontal flip (None: on for colour images only)
    rotation: float | None = None       # degrees
    color_jitter: float | None = None   # brightness/contrast/saturation strength
    normalize: bool = True
    balance: str = "auto"               # none | class_weights | sampler
    # speed and reproducibility
    device: str = "auto"                # auto | cpu | cuda | cuda:1 | mps
    precision: str = "auto"             # auto | bf16 | fp16 | fp32
    channels_last: bool = True
    threads: int = 0                    # CPU threads; 0 = all cores
    seed: int = 0
    deterministic: bool = False
    log_every: int = 0                  # steps between progress lines; 0 = about 10 per epoch
    finetune: dict | None = None        # fine-tuning runs: a core.finetune.FinetuneConfig as a dict

    def to_dict(self) -> dict:
        """The options as a plain dict (JSON-ready)."""
        return asdict(self)

    def to_json(self) -> str:
        """The options as indented JSON, the form stored in a run's ``config.json``."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A config from a dict; ``"auto"`` becomes ``None`` for options resolved later.

        Raises ``ImageLabError`` naming any unknown option."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ImageLabError(f"unknown training option(s): {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(known))}")
        return cls(**{k: (None if v == "auto" and k not in _STR_AUTO else v)
                      for k, v in data.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """A config from a YAML or JSON file of ``option: value`` pairs.

        Raises ``ImageLabError`` when the file cannot be read, does not parse or is no mapping."""
        import yaml
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ImageLabError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ImageLabError(f"config {path} is not valid YAML/JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ImageLabError(f"config {path} must be a mapping of option: value")
        return cls.from_dict(data)


_STR_AUTO = {"arch", "optimizer", "precision", "balance", "crop", "device"}


def validate(cfg: TrainConfig) -> None:
    """Check the options' values and ranges; raises ``ImageLabError`` with the first problem
    found."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ImageLabError(msg)
    need(bool(cfg.dataset), "choose a dataset to train on")
    need(cfg.optimizer in OPTIMIZERS + ("auto",), f"optimizer must be one of {', '.join(OPTIMIZERS)}")
    need(cfg.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}")
    need(cfg.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")
    need(cfg.balance in BALANCE, f"balance must be one of {', '.join(BALANCE[1:])}")
    need(cfg.crop in CROPS, f"crop must be one of {', '.join(CROPS[1:])}")
    need(cfg.epochs is None or 1 <= cfg.epochs <= 10_000, "epochs must be between 1 and 10000")
    need(cfg.batch_size is None or cfg.batch_size >= 1, "batch size must be at least 1")
    need(cfg.lr is None or 0 < cfg.lr < 100, "learning rate must be positive (and below 100)")
    need(cfg.weight_decay is None or cfg.weight_decay >= 0, "weight decay cannot be negative")
    need(0 <= cfg.label_smoothing < 1, "label smoothing must be in [0, 1)")
    need(cfg.grad_clip >= 0, "gradient clipping must be 0 (off) or positive")
    need(0 < cfg.crop_scale <= 1, "crop scale must be in (0, 1]")
    need(0 <= cfg.translate < 0.5, "translate must be in [0, 0.5)")


DEFAULT_SMALL_ARCH = "compact-deep"    # from scratch on images up to 64 px, and on any CPU
MIN_STEPS_PER_EPOCH = 50                # small sets: smaller batches, so an epoch teaches enough


def default_batch_size(num_train: int, gpu: bool) -> int:
    """The largest of 32, 64, 128 (256 on a GPU) that still gives an epoch at least
    ``MIN_STEPS_PER_EPOCH`` steps; 32 for sets too small for that.

    A few hundred to a few thousand images at batch 128 make an epoch of 15–30 steps, too
    few for a net from scratch to leave chance in the first epochs (docs/DECISIONS.md,
    "Defaults that learn at once")."""
    batch = 32
    while batch * 2 <= (256 if gpu else 128) and num_train // (batch * 2) >= MIN_STEPS_PER_EPOCH:
        batch *= 2
    return batch


def resolve_config(cfg: TrainConfig, facts, device_type: str, bf16: bool) -> TrainConfig:
    """Fill every ``None``/``auto`` option from the dataset's facts and the device."""
    validate(cfg)
    c = TrainConfig(**cfg.to_dict())
    gpu = device_type != "cpu"
    gray = facts.channels == 1
    if c.image_size is None:
        # the images' own size, kept small on a CPU (big inputs cost quadratically)
        c.image_size = int(min(max(facts.native_size, 16), 224 if gpu else 64))
    if c.arch == "auto":
        c.arch = DEFAULT_SMALL_ARCH if c.image_size <= 64 or not gpu else "resnet18"
    n = facts.num_train
    if c.batch_size is None:
        c.batch_size = default_batch_size(n, gpu)
    if c.epochs is None:
        # about 60k sample-views for small sets (enough for MNIST-sized problems),
        # fewer passes over large sets
        c.epochs = int(min(40, max(8, round(60_000 / max(n, 1)))))
    if c.optimizer == "auto":
        c.optimizer = "nesterov"
    if c.lr is None:
        base = 0.1 if c.optimizer in ("sgd", "nesterov") else 2e-3
        c.lr = base * c.batch_size / 128 if c.optimizer in ("sgd", "nesterov") else base
    if c.weight_decay is None:
        c.weight_decay = 5e-4 if c.optimizer in ("sgd", "nesterov") else 0.05
    if c.warmup_epochs is None:
        c.warmup_epochs = round(min(2.0, 0.2 * c.epochs), 2) if c.schedule != "constant" else 0.0
    if c.crop == "auto":
        c.crop = "translate" if gray or c.image_size < 64 else "resized_crop"
    if c.flip is None:
        c.flip = not gray          # digits and text must not be mirrored
    if c.rotation is None:
        c.rotation = 10.0 if gray else 0.0
    if c.color_jitter is None:
        c.color_jitter = 0.0 if gray else 0.2
    if c.balance == "auto":
        c.balance = "class_weights" if facts.imbalance > 3 else "none"
    if c.precision == "auto":
        c.precision = "bf16" if bf16 else ("fp16" if device_type == "cuda" else "fp32")
    return c
