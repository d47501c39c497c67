"""How long an epoch will take: a few real training steps, timed, before a run starts."""

from __future__ import annotations

import time

from core.store.workspace import Workspace
from core.training.config import TrainConfig
from core.training.loop import evaluate, train_one_epoch
from core.training.run import build_trainer
from core.training.trainer import Callback


def estimate_epoch_seconds(ws: Workspace, cfg: TrainConfig, steps: int = 4, *,
                           callbacks: list[Callback] | None = None) -> dict:
    """Time a few real training steps of ``cfg`` (after one warm-up step) and one
    validation pass; writes no files. ``callbacks`` as for ``build_trainer`` (a fine-tuning
    config needs the fine-tuning callback)."""
    t = build_trainer(ws, cfg, callbacks=callbacks)
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
