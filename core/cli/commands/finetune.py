"""Handlers of ``python -m core finetune`` and ``lr-find`` (parsers: ``core/cli/finetune.py``)."""

from __future__ import annotations

from core.cli.commands.train import config_from_args
from core.cli.output import StderrProgress, emit, log, table
from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.finetune.lr_finder import lr_find
from core.finetune.setup import (
    FinetuneConfig,
    create_finetune_run,
    prepare_finetune,
    read_finetune_info,
    start_finetune,
)
from core.finetune.weights_map import describe_mapping
from core.training.callbacks import ConsoleProgress
from core.training.run import train_run
from core.training.runs import prepare_config


def _configs(args):
    if not args.dataset and not args.config:
        raise ImageLabError("choose a dataset: --dataset NAME")
    cfg = config_from_args(args)
    ft = FinetuneConfig(args.source, args.freeze, args.unfreeze_after, args.lr_mult,
                        feature_cache=args.feature_cache) \
        if args.source else None
    return cfg, ft


def cmd_finetune(args, ws) -> int:
    """Create a fine-tuning run and train it here, or queue it (``--background``)."""
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
    log(_start_lines(info))
    summary = train_run(ws, run.id, callbacks=[ConsoleProgress(), FineTuning()],
                        progress=StderrProgress())
    summary.update(kind="finetune", source=info["source"], head=info["head"],
                   frozen=info["frozen"], lr_mults=info["lr_mults"],
                   unfreeze_after=info["unfreeze_after"], resolution=info.get("resolution"))
    emit(args, summary, _human)
    return 0


def _start_lines(info: dict) -> str:
    """How the weights were matched to the model, and the image size and why."""
    lines = []
    if info["source"].get("mapping"):
        lines.append("weights " + describe_mapping(info["source"]["mapping"]))
    res = info.get("resolution")
    if res:
        lines.append(f"image size {res['image_size']} px: {res['rule']}"
                     + (f" (about {res['epoch_seconds']:.0f} s per epoch)"
                        if res.get("epoch_seconds") is not None else ""))
    return "\n".join(lines)


def _human(s: dict) -> str:
    m = s["metrics"]
    acc = f"{m['val_accuracy']:.4f}" if m.get("val_accuracy") is not None else "–"
    return (f"run {s['run_id']}: {s['status']}" + (f" ({s['message']})" if s.get("message") else "")
            + f"\nfine-tuned from {s['source']['label']}; val accuracy {acc}, "
              f"{m['epochs']} epochs, {m['seconds']:.1f}s"
            + (f"\n{_start_lines(s)}" if _start_lines(s) else ""))


def cmd_lr_find(args, ws) -> int:
    """Smith's range test from the ``--from`` start (or from scratch): the suggested rate."""
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
