"""``python -m core finetune …`` and ``python -m core lr-find …``.

``finetune`` starts a fine-tuning run — an ordinary run of kind ``finetune`` — from a run
of the workspace, ``ARCH:imagenet`` or a weights file, in the foreground (default: progress
on stderr, then the summary) or as a background job (``--background``). ``lr-find`` runs
Smith's range test from the same start (or from scratch without ``--from``) and prints
the suggested learning rate. Every training option of ``train`` is accepted too.
"""

from __future__ import annotations

import argparse

from core.cli.output import StderrProgress, emit, log, table
from core.cli.train import _OPTIONS, config_from_args
from core.errors import ImageLabError


def _add_common(p, source_required: bool) -> None:
    p.add_argument("--from", dest="source", required=source_required, metavar="RUN_ID|WEIGHTS",
                   help="a run id of this workspace, ARCH:imagenet (torchvision's ImageNet "
                        "weights, e.g. resnet18:imagenet), or a .pt/.pth/.safetensors file")
    p.add_argument("--dataset", help="the dataset to fine-tune on (see `datasets list`)")
    p.add_argument("--freeze", default="none",
                   help="none (train everything), head (train the head only: a linear probe), "
                        "last:N (train the last N layer groups), or group names to freeze, "
                        "comma-separated")
    p.add_argument("--unfreeze-after", type=int, default=0, metavar="K",
                   help="after K epochs, unfreeze every group (gradual unfreezing; 0: never)")
    p.add_argument("--lr-mult", default="", metavar="GROUP=X,…|discriminative:LOW",
                   help="per-group learning-rate multipliers, e.g. stem=0.1,stage2=0.3, or "
                        "discriminative:0.1 (0.1× at the stem growing to 1× at the head)")
    p.add_argument("--config", metavar="FILE.yaml", help="training options as YAML")
    for flag, typ, help_text in _OPTIONS:
        p.add_argument(flag, type=typ, help=help_text)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--deterministic", action="store_true", default=None)


def register(sub, common) -> None:
    p = sub.add_parser(
        "finetune", parents=[common], help="fine-tune a pretrained model on a dataset",
        description="Start from pretrained weights, rebuild the head for the dataset's "
                    "classes (classes with the same name keep their rows), freeze layer "
                    "groups and train. The run is an ordinary run: `runs show/stop/resume`.")
    _add_common(p, True)
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--background", action="store_true",
                   help="queue the run as a background job and return at once")
    p.set_defaults(func=cmd_finetune)
    q = sub.add_parser(
        "lr-find", parents=[common], help="learning-rate range test (suggests a rate)",
        description="Smith's range test: a short training with an exponentially growing "
                    "learning rate; prints loss against rate and a suggested rate.")
    _add_common(q, False)
    q.add_argument("--start-lr", type=float, default=1e-5)
    q.add_argument("--end-lr", type=float, default=10.0)
    q.add_argument("--steps", type=int, default=80)
    q.set_defaults(func=cmd_lr_find)


def _configs(args):
    from core.finetune.setup import FinetuneConfig
    if not args.dataset and not args.config:
        raise ImageLabError("choose a dataset: --dataset NAME")
    cfg = config_from_args(args)
    ft = FinetuneConfig(args.source, args.freeze, args.unfreeze_after, args.lr_mult) \
        if args.source else None
    return cfg, ft


def cmd_finetune(args, ws) -> int:
    from core.finetune.setup import create_finetune_run, read_finetune_info, start_finetune
    from core.training.callbacks import ConsoleProgress
    from core.training.engine import train_run

    cfg, ft = _configs(args)
    if args.background:
        run = start_finetune(ws, cfg, ft, name=args.name)
        emit(args, {"run_id": run.id, "status": run.status, "folder": str(run.folder),
                    **read_finetune_info(run.folder)},
             lambda d: f"run {d['run_id']} {d['status']} (watch it: python -m core runs show "
                       f"{d['run_id']})")
        return 0
    run = create_finetune_run(ws, cfg, ft, name=args.name)
    info = read_finetune_info(run.folder)
    log(f"run {run.id} created in {run.folder}: from {info['source']['label']}; "
        f"head rows kept for {len(info['head']['kept'])} classes"
        + (f" ({', '.join(info['head']['kept'])})" if info['head']['kept'] else "")
        + (f"; frozen: {', '.join(info['frozen'])}" if info["frozen"] else ""))
    summary = train_run(ws, run.id, callbacks=[ConsoleProgress()], progress=StderrProgress())
    summary.update(kind="finetune", source=info["source"], head=info["head"],
                   frozen=info["frozen"], lr_mults=info["lr_mults"],
                   unfreeze_after=info["unfreeze_after"])
    emit(args, summary, _human)
    return 0


def _human(s: dict) -> str:
    m = s["metrics"]
    acc = f"{m['val_accuracy']:.4f}" if m.get("val_accuracy") is not None else "–"
    return (f"run {s['run_id']}: {s['status']}" + (f" ({s['message']})" if s.get("message") else "")
            + f"\nfine-tuned from {s['source']['label']}; val accuracy {acc}, "
              f"{m['epochs']} epochs, {m['seconds']:.1f}s")


def cmd_lr_find(args, ws) -> int:
    from core.finetune.lr_finder import lr_find
    from core.finetune.setup import prepare_finetune
    from core.training.runs import prepare_config

    cfg, ft = _configs(args)
    cfg = prepare_finetune(ws, cfg, ft).cfg if ft else prepare_config(ws, cfg)
    log(f"LR range test: {args.steps} steps from {args.start_lr:g} to {args.end_lr:g} "
        f"({cfg.arch}, batch {cfg.batch_size})")
    res = lr_find(ws, cfg, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    res["source"] = args.source
    emit(args, res, _lr_human)
    return 0


def _lr_human(r: dict) -> str:
    pts = list(zip(r["lrs"], r["losses"]))
    rows = [{"lr": f"{lr:.2e}", "loss": f"{loss:.4f}"} for lr, loss in pts[::max(1, len(pts) // 12)]]
    return (table(rows, ["lr", "loss"])
            + f"\nsuggested learning rate: {r['suggested_lr']:.3g} (steepest descent; "
              f"minimum/10: {r['min_over_10_lr']:.3g})\nuse it: --lr {r['suggested_lr']:.3g}")
