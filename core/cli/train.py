"""``python -m core train …``: train a model, in the foreground (default), in the
background (``--background``), or as one rank of ``torchrun --nproc-per-node N -m core train …``.

``--run-dir`` (with ``--resume``) is how background jobs run an existing run's folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.output import StderrProgress, emit, log
from core.errors import ImageLabError

# CLI flag -> TrainConfig field, for every option the CLI exposes directly
_OPTIONS = [
    ("--label-version", int, "train on the labels as they were at this version (default: current)"),
    ("--arch", str, "architecture: compact, pytorch-cnn, keras-mnist, wide, resnet18, …"),
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
    p.set_defaults(func=cmd_train)


def config_from_args(args):
    from core.training.config import TrainConfig
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    data = cfg.to_dict()
    if args.dataset:
        data["dataset"] = args.dataset
    for flag, _, _ in _OPTIONS:
        key = flag[2:].replace("-", "_")
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    for key in ("flip", "channels_last", "deterministic"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    return TrainConfig.from_dict(data)


def cmd_train(args, ws) -> int:
    from core.training import jobs
    from core.training.callbacks import ConsoleProgress
    from core.training.ddp import DistContext
    from core.training.engine import train_run
    from core.training.runs import create_run

    if args.run_dir:                      # a background job (or a resume) of an existing run
        run_id = Path(args.run_dir).name
        status = "failed"
        try:
            summary = train_run(ws, run_id, resume=args.resume, callbacks=[ConsoleProgress()],
                                progress=StderrProgress())
            status = "done"
        finally:
            jobs.finish_job(ws, args.job_id, status)
        emit(args, summary, _human)
        return 0

    if not args.dataset and not args.config:
        raise ImageLabError("choose a dataset: python -m core train --dataset NAME")
    cfg = config_from_args(args)
    if args.background:
        run = jobs.start_run(ws, cfg, name=args.name)
        emit(args, {"run_id": run.id, "status": run.status, "folder": str(run.folder)},
             lambda d: f"run {d['run_id']} {d['status']} (watch it: python -m core runs show "
                       f"{d['run_id']})")
        return 0

    dist = DistContext.from_env()
    run_id = None
    if dist.enabled:
        from core.device import pick_device
        dist.init(pick_device(cfg.device).split(":")[0])
    try:
        if dist.is_main:
            run_id = create_run(ws, cfg, status="queued", name=args.name).id
            log(f"run {run_id} created in {ws.runs_dir / run_id}")
    finally:
        run_id = dist.broadcast_object(run_id)
    if run_id is None:
        raise ImageLabError("rank 0 could not create the run (see its error)")
    try:
        summary = train_run(ws, run_id, callbacks=[ConsoleProgress()], dist=dist,
                            progress=StderrProgress())
    finally:
        dist.close()
    if dist.is_main:
        emit(args, summary, _human)
    return 0


def _human(s: dict) -> str:
    m = s["metrics"]
    acc = f"{m['val_accuracy']:.4f}" if m.get("val_accuracy") is not None else "–"
    return (f"run {s['run_id']}: {s['status']}"
            + (f" ({s['message']})" if s.get("message") else "")
            + f"\nval accuracy {acc}, {m['epochs']} epochs, {m['seconds']:.1f}s")
