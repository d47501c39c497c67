"""Smith's learning-rate range test (as fastai's ``lr_find``).

Train from the run's starting point for a few dozen steps while the learning rate grows
exponentially from ``start_lr`` to ``end_lr``; record the loss, smoothed with an
exponential moving average (bias-corrected), and stop once it exceeds ``diverge`` times
its minimum. Suggestions: the rate of steepest descent of the smoothed loss (against
log LR) and the rate of the minimum divided by 10. Nothing is saved: the trainer is built
in memory and thrown away. Each step is training's own ``train_step`` (gradient clipping,
mixed precision); frozen groups and per-group multipliers apply through the same
``FineTuning`` callback as in training.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.store.workspace import Workspace
from core.training.config import TrainConfig
from core.training.data import epoch_order
from core.training.loop import prepare_batch, train_step
from core.training.run import build_trainer


def lr_find(ws: Workspace, cfg: TrainConfig, *, start_lr: float = 1e-5, end_lr: float = 10.0,
            steps: int = 80, smooth: float = 0.9, diverge: float = 4.0) -> dict:
    """The range test for ``cfg``, which must be resolved (``prepare_config`` or
    ``prepare_finetune(...).cfg``): rates, smoothed and raw losses, and the suggestions."""
    if not 0 < start_lr < end_lr:
        raise ImageLabError("the LR range needs 0 < start < end")
    if steps < 10:
        raise ImageLabError("the LR finder needs at least 10 steps")
    finetuning = FineTuning()                 # a no-op for a from-scratch config
    t = build_trainer(ws, cfg, callbacks=[finetuning])
    data = t.data
    t.model.train()
    t.callbacks.on_train_epoch_start(t)
    ratio = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs, raw, smoothed = [], [], []
    avg, best = 0.0, math.inf
    bs = cfg.batch_size
    per_epoch = max(1, len(data.train) // bs)
    order = None
    for i in range(steps):
        if i % per_epoch == 0:
            order = epoch_order(len(data.train), i // per_epoch, cfg.seed, t.sampler_weights)
        j = (i % per_epoch) * bs
        x, y = prepare_batch(t, data.train, order[j:j + bs], train=True)
        lr = start_lr * ratio ** i
        loss, _ = train_step(t, x, y, lr)
        value = float(loss)
        if not math.isfinite(value):
            break
        avg = smooth * avg + (1 - smooth) * value
        s = avg / (1 - smooth ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smoothed.append(s)
        best = min(best, s)
        if i > 5 and s > diverge * best:
            break
    if len(lrs) < 5:
        raise ImageLabError(f"the loss diverged within {len(lrs)} steps from {start_lr:g}; "
                            "start the range lower")
    return {"lrs": lrs, "losses": smoothed, "raw_losses": raw, **suggest(lrs, smoothed),
            "start_lr": start_lr, "end_lr": end_lr, "steps": len(lrs),
            "frozen": finetuning.frozen}


FLAT_DROP = 0.05   # the loss must fall by 5% before the steepest point means anything


def suggest(lrs: list[float], losses: list[float]) -> dict:
    """Steepest descent of the smoothed loss before its minimum, and the minimum's rate / 10.

    The first tenth of the points is smoothing warm-up: the start of the curve is their
    median (not the first point, a single batch's loss) and the minimum is looked for after
    them (a low first batch once gave a minimum at the very first rate, and 1e-6)."""
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    skip = max(1, len(lr) // 10) if len(lr) > 4 else 0
    start = float(np.median(loss[:skip + 1]))
    lo = skip + int(np.argmin(loss[skip:]))
    min_over_10 = float(lr[lo] / 10)
    end = max(lo, skip + 2)
    grads = np.gradient(loss[:end + 1], np.log10(lr[:end + 1]))
    k = skip + int(np.argmin(grads[skip:end])) if end > skip else lo
    steepest = float(lr[k])
    # A curve that barely falls before it blows up (a frozen body, a tiny dataset) has no
    # real steepest point, only noise: then take the minimum's rate / 10, as fastai does.
    # Never suggest far below that either (the steepest slope can sit in early noise), nor
    # a steepest point after which the loss does not go on falling: a wiggle of a flat stretch
    # (seen in a browser journey: 1.7e-4 on a curve flat until 0.02, a fine-tune that then
    # learnt nothing in 3 epochs).
    drop = (start - loss[lo]) / max(abs(start), 1e-12)
    if drop < FLAT_DROP:
        # flat: the largest rate before the loss rises 5% above its start, / 10
        above = skip + np.nonzero(loss[skip:] > start * (1 + FLAT_DROP))[0]
        edge = int(above[0]) - 1 if len(above) else len(lr) - 1
        suggested = float(lr[max(edge, 0)] / 10)
    elif math.isfinite(steepest) and steepest >= lr[lo] / 1000 and \
            falls_after(loss, k, lo, start):
        suggested = steepest
    else:
        suggested = min_over_10
    return {"suggested_lr": suggested,
            "steepest_lr": steepest, "min_loss_lr": float(lr[lo]), "min_over_10_lr": min_over_10,
            "loss_drop": float(drop)}


STEEPEST_WINDOW = 0.1   # a tenth of the points tried: about 0.6 decades of the default range
STEEPEST_SHARE = 0.25   # of the whole drop, which the loss must lose within that window


def falls_after(loss: np.ndarray, k: int, lo: int, start: float) -> bool:
    """Whether the smoothed loss goes on falling after the steepest point ``k``: within the
    next ``STEEPEST_WINDOW`` of the points (up to the minimum ``lo``) it loses at least
    ``STEEPEST_SHARE`` of the curve's whole drop from ``start``. Noise on a flat stretch
    does not."""
    whole = start - loss[lo]
    later = min(lo, k + max(2, int(len(loss) * STEEPEST_WINDOW)))
    return whole > 0 and loss[k] - loss[later] >= STEEPEST_SHARE * whole
