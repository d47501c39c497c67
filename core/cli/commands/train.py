"""Handler of ``python -m core train`` (parser: ``core/cli/train.py``)."""

from __future__ import annotations

from pathlib import Path

from core.cli.output import StderrProgress, emit, log
from core.cli.train import _OPTIONS
from core.device import pick_device
from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.store.run_paths import best_val_text
from core.training import jobs
from core.training.callbacks import ConsoleProgress
from core.training.config import TrainConfig
from core.training.ddp import DistContext
from core.training.run import train_run
from core.training.runs import create_run


def config_from_args(args) -> TrainConfig:
    """The ``TrainConfig`` of the command line: ``--config`` YAML, then the flags."""
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
    """Train in the foreground, queue (``--background``), or run a job's existing run."""
    if args.run_dir:                      # a background job (or a resume) of an existing run
        run_id = Path(args.run_dir).name
        status = "failed"
        try:
            # a queued run may be a fine-tuning one: FineTuning applies its section (or nothing)
            summary = train_run(ws, run_id, resume=args.resume,
                                callbacks=[ConsoleProgress(), FineTuning()],
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
        summary = train_run(ws, run_id, callbacks=[ConsoleProgress(), FineTuning()], dist=dist,
                            progress=StderrProgress())
    finally:
        dist.close()
    if dist.is_main:
        emit(args, summary, _human)
    return 0


def _human(s: dict) -> str:
    m = s["metrics"]
    last = (f"; final epoch {m['val_accuracy']:.1%} · last.pt"
            if m.get("val_accuracy") is not None else "")
    return (f"run {s['run_id']}: {s['status']}"
            + (f" ({s['message']})" if s.get("message") else "")
            + f"\n{best_val_text(m)}{last}, {m['epochs']} epochs, {m['seconds']:.1f}s")
