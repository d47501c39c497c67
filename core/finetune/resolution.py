"""The image size for fine-tuning from ImageNet weights: theirs, or a measured trade-off.

ImageNet features are learnt at the weights' resolution (224 px for EfficientNet-Lite0 and
the torchvision nets); at 64 px they lose most of their value. ``choose_image_size`` keeps
the weights' own size on a GPU, and whenever only the head trains (the frozen body then
costs one forward pass per image: the feature cache). On a CPU with body layers training
it times one forward+backward pass of the actual model (its frozen groups frozen) at a
small batch, estimates the seconds per epoch for the dataset, and takes the largest
candidate size whose epoch fits ``EPOCH_BUDGET_S`` (the smallest size is timed first, each
larger one is predicted from it by area and timed only if the prediction fits). The choice and its estimate are
recorded with the run (``finetune.json``'s ``resolution``), so the page can say "160 px at
about 41 s per epoch". Step timings are kept for the process, so preparing the same
fine-tune again (a page rerun) costs no timing.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from core.finetune.groups import HEAD, LayerGroup, set_frozen

CANDIDATE_SIZES = (224, 192, 160, 128)     # below the weights' own size, largest first
# One epoch a minute on the CPU: the target is a fine-tuned photo model within
# 3 minutes on 2 cores, and ImageNet features need only a few epochs (a plain script
# reached 94% head-only after 2 epochs at 224 px), so 60 s per epoch leaves room for 2–3
# epochs and evaluation, and shows a first validation result within a minute.
EPOCH_BUDGET_S = 60.0
TIMING_BATCH = 4             # small: the timing must stay cheap (~3 s on 2 cores)
TIMING_LIMIT_S = 3.0         # timing spent past this: a size is chosen on its predicted time
WARM_UP = 0                  # the timings' entry for the untimed first pass
VAL_COST = 1 / 3             # a validation image costs a forward pass: ~1/3 of forward+backward
# Step timings per (model class, parameter count, input channels, frozen groups, threads),
# kept for the process: a page that prepares the same fine-tune again times nothing.
_TIMINGS: dict[tuple, dict[int, float]] = {}


def untimed_rule(image_size: int, why: str) -> dict:
    """The record of a size taken without timing: ``{"image_size", "epoch_seconds": None,
    "rule": why}`` (``why`` in the user's words)."""
    return {"image_size": int(image_size), "epoch_seconds": None, "rule": why}


def choose_image_size(model: nn.Module, groups: list[LayerGroup], frozen: list[str],
                      unfreeze_after: int, weights_size: int, *, device_type: str,
                      num_train: int, num_val: int) -> dict:
    """``{"image_size", "epoch_seconds", "rule", "measured"}`` for fine-tuning ``model``
    (built for the dataset) from weights trained at ``weights_size`` (see the module)."""
    body = {g.name for g in groups if g.name != HEAD}
    if device_type != "cpu":
        return untimed_rule(weights_size, "the weights' resolution (on a GPU)")
    if body <= set(frozen) and not unfreeze_after:
        return untimed_rule(weights_size, "the weights' resolution: only the head trains, "
                                          "the frozen body runs once per image")
    if (getattr(model, "pretrained_cfg", None) or {}).get("fixed_input_size"):   # a timm ViT
        return untimed_rule(weights_size, "the weights' resolution: this architecture "
                                          "takes one input size only")
    sizes = [weights_size] + [s for s in CANDIDATE_SIZES if s < weights_size]
    timed_frozen = [] if unfreeze_after else frozen      # with unfreezing: the costly epochs
    model.train()
    set_frozen(model, groups, timed_frozen)
    channels = next(p for p in model.parameters() if p.ndim == 4).shape[1]
    steps = _TIMINGS.setdefault((type(model).__qualname__, sum(p.numel() for p in model.parameters()),
                                 channels, tuple(sorted(timed_frozen)), torch.get_num_threads()), {})

    def step(size: int) -> float:
        if size not in steps:
            if not steps:
                steps[WARM_UP] = _step_seconds(model, size, channels)   # first-call costs
            steps[size] = _step_seconds(model, size, channels)
        return steps[size]

    per_pixel = step(sizes[-1]) / sizes[-1] ** 2
    measured = {sizes[-1]: _epoch(step(sizes[-1]), num_train, num_val)}
    chosen, estimate = sizes[-1], measured[sizes[-1]]
    for size in sizes[:-1]:       # largest first: predicted from the smallest, then timed
        predicted = _epoch(per_pixel * size ** 2, num_train, num_val)
        if predicted > EPOCH_BUDGET_S:
            continue
        if size not in steps and sum(steps.values()) > TIMING_LIMIT_S:
            chosen, estimate = size, predicted        # a slow CPU: trust the prediction
            break
        measured[size] = _epoch(step(size), num_train, num_val)
        if measured[size] <= EPOCH_BUDGET_S:
            chosen, estimate = size, measured[size]
            break
    model.zero_grad(set_to_none=True)
    rule = (f"the largest size whose epoch fits {EPOCH_BUDGET_S:.0f} s on this CPU"
            if estimate <= EPOCH_BUDGET_S else f"the smallest candidate size: no size fits "
                                               f"{EPOCH_BUDGET_S:.0f} s per epoch on this CPU")
    return {"image_size": chosen, "epoch_seconds": _figure(estimate), "rule": rule,
            "measured": [[s, _figure(v)] for s, v in sorted(measured.items(), reverse=True)]}


def _figure(seconds: float) -> float:
    """Seconds to three significant digits: a tiny epoch on a fast machine stays above 0."""
    return float(f"{seconds:.3g}")


def _epoch(step_seconds: float, num_train: int, num_val: int) -> float:
    """Seconds per epoch from one timed training step of ``TIMING_BATCH`` images."""
    per_image = step_seconds / TIMING_BATCH
    return per_image * (num_train + VAL_COST * num_val)


def _step_seconds(model: nn.Module, size: int, channels: int) -> float:
    """Wall time of one forward+backward pass at ``size`` px (fixed inputs, no optimizer)."""
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(TIMING_BATCH, channels, size, size, generator=gen)
    model.zero_grad(set_to_none=True)
    t = time.perf_counter()
    out = model(x).logsumexp(1).mean()
    if out.requires_grad:
        out.backward()
    return time.perf_counter() - t
