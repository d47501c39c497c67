"""``python -m core finetune …`` and ``python -m core lr-find …``.

``finetune`` starts a fine-tuning run — an ordinary run of kind ``finetune`` — from a run
of the workspace, ``ARCH:imagenet`` (``efficientnet_lite0:imagenet`` works offline) or a
weights file (``--arch`` names its architecture; foreign names are mapped by order), in
the foreground (default: progress on stderr, then the summary) or as a background job
(``--background``). ``lr-find`` runs
Smith's range test from the same start (or from scratch without ``--from``) and prints
the suggested learning rate. Every training option of ``train`` is accepted too.
The parsers; the handlers are in ``core/cli/commands/finetune.py``.
"""

from __future__ import annotations

import argparse

from core.cli.train import _OPTIONS


def _add_common(p, source_required: bool) -> None:
    p.add_argument("--from", dest="source", required=source_required, metavar="RUN_ID|WEIGHTS",
                   help="a run id of this workspace, ARCH:imagenet (ImageNet weights: "
                        "efficientnet_lite0:imagenet works offline; a torchvision name, e.g. "
                        "resnet18:imagenet, or any timm name downloads them), or a "
                        ".pt/.pth/.bin/.safetensors file (with --arch NAME when it does not "
                        "say; another naming scheme is mapped by order)")
    p.add_argument("--dataset", help="the dataset to fine-tune on (see `datasets list`)")
    p.add_argument("--freeze", default="auto",
                   help="auto (default: head from ImageNet weights, none from a run or a file), "
                        "none (train everything), head (train the head only: a linear probe), "
                        "last:N (train the last N layer groups), or group names to freeze, "
                        "comma-separated")
    p.add_argument("--unfreeze-after", type=int, default=0, metavar="K",
                   help="after K epochs, unfreeze every group (gradual unfreezing; 0: never)")
    p.add_argument("--lr-mult", default="", metavar="GROUP=X,…|discriminative:LOW",
                   help="per-group learning-rate multipliers, e.g. stem=0.1,stage2=0.3, or "
                        "discriminative:0.1 (0.1× at the stem growing to 1× at the head)")
    p.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                   help="run the frozen body at every step instead of reusing its features "
                        "(the same model, slower; for checking)")
    p.add_argument("--config", metavar="FILE.yaml", help="training options as YAML")
    for flag, typ, help_text in _OPTIONS:
        p.add_argument(flag, type=typ, help=help_text)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--deterministic", action="store_true", default=None)


def register(sub, common) -> None:
    """Add the ``finetune`` and ``lr-find`` commands to the subparsers ``sub``, sharing the
    ``common`` options."""
    p = sub.add_parser(
        "finetune", parents=[common], help="fine-tune a pretrained model on a dataset",
        description="Start from pretrained weights, rebuild the head for the dataset's "
                    "classes (classes with the same name keep their rows), freeze layer "
                    "groups and train. The run is an ordinary run: `runs show/stop/resume`.")
    _add_common(p, True)
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--background", action="store_true",
                   help="queue the run as a background job and return at once")
    p.set_defaults(func="core.cli.commands.finetune:cmd_finetune")
    q = sub.add_parser(
        "lr-find", parents=[common], help="learning-rate range test (suggests a rate)",
        description="Smith's range test: a short training with an exponentially growing "
                    "learning rate; prints loss against rate and a suggested rate.")
    _add_common(q, False)
    q.add_argument("--start-lr", type=float, default=1e-5)
    q.add_argument("--end-lr", type=float, default=10.0)
    q.add_argument("--steps", type=int, default=80)
    q.set_defaults(func="core.cli.commands.finetune:cmd_lr_find")
