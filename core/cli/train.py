"""``python -m core train …``: train a model, in the foreground (default), in the
background (``--background``), or as one rank of ``torchrun --nproc-per-node N -m core train …``.

``--run-dir`` (with ``--resume``) is how background jobs run an existing run's folder.
The parser; the handler is in ``core/cli/commands/train.py``.
"""

from __future__ import annotations

import argparse

# CLI flag -> TrainConfig field, for every option the CLI exposes directly
_OPTIONS = [
    ("--label-version", int, "train on the labels as they were at this version (default: current)"),
    ("--arch", str, "architecture: compact-deep, compact, pytorch-cnn, keras-mnist, wide, resnet18, "
                      "…, or any timm model name (efficientnet_lite0, timm/resnet18)"),
    ("--image-size", int, "input side in pixels (default: from the images)"),
    ("--epochs", int, "passes over the training split (default: from the dataset size)"),
    ("--batch-size", int, "images per step (per process under torchrun)"),
    ("--lr", float, "peak learning rate"),
    ("--weight-decay", float, "weight decay"),
    ("--optimizer", str, "sgd | nesterov | adam | adamw"),
    ("--momentum", float, "SGD momentum (default 0.9)"),
    ("--schedule", str, "onecycle | cosine | step | constant"),
    ("--warmup-epochs", float, "linear warm-up length in epochs"),
    ("--label-smoothing", float, "label smoothing (default 0.1)"),
    ("--grad-clip", float, "clip the gradient norm to this (0: off)"),
    ("--early-stopping", int, "stop after N epochs without a better val accuracy (0: off)"),
    ("--crop", str, "augmentation crop: translate | resized_crop | none"),
    ("--rotation", float, "random rotation, degrees"),
    ("--color-jitter", float, "brightness/contrast/saturation jitter strength"),
    ("--balance", str, "class imbalance: none | class_weights | sampler"),
    ("--device", str, "auto | cpu | cuda | cuda:N | mps"),
    ("--precision", str, "auto | bf16 | fp16 | fp32"),
    ("--threads", int, "CPU threads (0: all cores)"),
    ("--seed", int, "random seed (default 0)"),
]


def register(sub, common) -> None:
    """Add the ``train`` command to the subparsers ``sub``, sharing the ``common`` options."""
    p = sub.add_parser(
        "train", parents=[common], help="train a model on a dataset",
        description="Train a CNN on a dataset of the workspace. Options left out get defaults "
                    "that adapt to the dataset and the device. Progress goes to stderr; the "
                    "summary (run_id, status, metrics) to stdout. Under torchrun, every rank "
                    "trains its share and rank 0 writes the run.")
    p.add_argument("--dataset", help="dataset name (see `datasets list`)")
    p.add_argument("--config", metavar="FILE.yaml", help="options as YAML (flags override it)")
    for flag, typ, help_text in _OPTIONS:
        p.add_argument(flag, type=typ, help=help_text)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips (default: on for colour images)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms (bitwise-reproducible on the CPU)")
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--background", action="store_true",
                   help="queue the run as a background job and return at once")
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--job-id", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func="core.cli.commands.train:cmd_train")
