"""A frozen body costs one forward pass: the head trains on memoised body features.

When every layer group but the head is frozen (head-only fine-tuning, the quick probe, the
LR finder on such a config, the frozen epochs of gradual unfreezing) and the head group is
the final ``nn.Linear`` alone, the whole model runs in eval mode, dropout before the head
included, whether or not features are cached. The
body is then a fixed function of its input image, so the head's input (the input of the
final ``nn.Linear``, caught with a forward hook) can be computed once per image and reused:

- the training split keeps two rows per image when the augmentation flips, the image and
  its mirror; the flips are drawn from the trainer's generator by the augmentation's own
  ``draw_flips``, so the cached and the pixel path see the same flips at every step;
- validation keeps one row per image (no augmentation);
- rows are computed when a batch first needs them, in that batch, on the trainer's device
  and memory format: training rows under its autocast as a step runs, the others (validation)
  in float32 as validation runs; a training step tops its body pass up to a whole
  batch with rows still missing: no step costs more than a pixel step (a probe or an LR
  range test shorter than an epoch costs what it did), there is one body pass per image
  and flip state over the whole frozen phase, and the twins are ready after about two
  epochs.

So the cache only memoises: it is the same model as running the body at every step, only
faster. It applies when the augmentation is flip-only (a crop, rotation or colour jitter
makes each step's image new), without DDP (each process would need its own rows, and the
head alone bypasses DDP's gradient averaging), when the model's output is its last
``nn.Linear``'s output, and when the rows fit in ``FEATURE_MEMORY_LIMIT`` bytes; the epoch
record says ``feature_cache`` (true/false), ``feature_seconds`` (body passes so far, in
seconds) and, when off, ``feature_cache_off`` (why). A body that changes (unfreezing, a
restored checkpoint with another body) drops the rows; the frozen epochs of gradual
unfreezing use them, the later ones the pixel path.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch
from torch import nn

from core.finetune.groups import HEAD, LayerGroup, head_module_name
from core.training.trainer import Trainer

FEATURE_MEMORY_LIMIT = 1 << 31


def body_frozen(names: list[str], frozen: list[str]) -> bool:
    """Whether ``frozen`` is every layer group of ``names`` but the head."""
    return HEAD in names and set(frozen) == set(names) - {HEAD}


def cache_refusal(t: Trainer) -> str:
    """Why the feature cache cannot serve this trainer ('' when it can), in words."""
    if not (t.cfg.finetune or {}).get("feature_cache", True):
        return "turned off (finetune.feature_cache is false)"
    if t.dist.enabled:
        return "distributed training: each process would need its own features"
    a = t.augment
    if not a.flip_only:
        return (f"the augmentation changes every image at every step (crop {a.crop}, "
                f"rotation {a.rotation:g}°, colour jitter {a.jitter:g}): only flips can be "
                "cached")
    return ""


class FeatureCache:
    """The head's inputs for the training and validation images of one trainer, computed
    when first needed (see the module docstring). Use ``open_cache`` to make one."""

    def __init__(self, t: Trainer, head_name: str, shape: tuple, dtype: torch.dtype):
        model = t.bare_model
        self.module: nn.Module = model.get_submodule(head_name)
        self.shape, self.dtype = shape, dtype
        self.splits = {"train": t.data.train, "val": t.data.val}
        self.augment, self.flip = t.augment, t.augment.flip
        self._body = [x for name, x in [*model.named_parameters(), *model.named_buffers()]
                      if not name.startswith(head_name + ".")]
        self._stamp = self._body_stamp()
        self._rows: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self.extras = t.record_extras
        self.seconds = float(self.extras.get("feature_seconds", 0.0))
        self.images = 0          # images run through the body

    def valid_for(self, t: Trainer) -> bool:
        """Whether this cache still describes ``t``: same splits, head and body weights."""
        return (t.data.train is self.splits["train"] and t.data.val is self.splits["val"]
                and t.augment is self.augment and self._stamp == self._body_stamp()
                and self.module is t.bare_model.get_submodule(head_module_name(t.bare_model)))

    def batch(self, t: Trainer, split, idx: torch.Tensor, *, train: bool) -> torch.Tensor:
        """The head's inputs for positions ``idx`` of ``split``: flipped as the augmentation
        draws them (from ``t.aug_rng``, as the pixel path would) when ``train``.

        Missing rows are computed in one body pass; a training batch tops that pass up to a
        whole batch with rows still missing elsewhere, so no step costs more than a pixel
        step and the rows a later step needs are ready in about one more epoch."""
        flips = t.augment.draw_flips(len(idx), t.aug_rng, t.device) if train else None
        if self._stamp != self._body_stamp():      # the body changed: its rows are stale
            self._rows.clear()
            self._stamp = self._body_stamp()
        which = next((k for k, s in self.splits.items() if s is split), None)
        if which is None:                          # another split (e.g. a test split)
            return self._compute(t, split, idx, flips, train)
        feats, known = self._table(which, train, len(split), t.device)
        feats, known, slots = feats.flatten(0, 1), known.view(-1), known.shape[1]
        pos = idx.to(t.device)
        keys = pos * slots + ((flips < 0).long() if slots == 2 else 0)   # row of (image, flip)
        missing = keys[~known[keys]]               # in batch order: the pixel path's batch
        if len(missing.unique()) != len(missing):  # an image drawn twice (sampler)
            missing = missing.unique()
        if train and len(missing) < len(idx):
            rest = (~known).nonzero().flatten()
            rest = rest[~torch.isin(rest, missing)][:len(idx) - len(missing)]
            missing = torch.cat([missing, rest])
        if len(missing):
            mirrored = missing % slots             # slot 1 is the mirrored image
            got = self._compute(t, split, missing // slots,
                                (1 - 2 * mirrored).float() if train else None, train)
            with torch.inference_mode(False):
                feats[missing] = got
                known[missing] = True
        return feats[keys]

    def _table(self, which: str, train: bool, n: int, device) -> tuple:
        key = (which, train)
        if key not in self._rows:
            slots = 2 if train and self.flip else 1
            with torch.inference_mode(False):
                dtype = self.dtype if train else torch.float32   # as head_inputs makes them
                self._rows[key] = (torch.empty((n, slots, *self.shape), dtype=dtype,
                                               device=device),
                                   torch.zeros((n, slots), dtype=torch.bool, device=device))
        return self._rows[key]

    def _compute(self, t: Trainer, split, idx: torch.Tensor, flips, train: bool) -> torch.Tensor:
        t0 = time.perf_counter()
        with torch.inference_mode(False), torch.no_grad():
            feats = head_inputs(t, split, idx, flips, self.module, autocast=train)
        self.images += len(idx)
        self.seconds += time.perf_counter() - t0
        self.extras["feature_seconds"] = round(self.seconds, 3)
        return feats

    def _body_stamp(self) -> tuple:
        return tuple((x.data_ptr(), x._version) for x in self._body)


def head_inputs(t: Trainer, split, idx: torch.Tensor, flips, head: nn.Module, *,
                autocast: bool = True) -> torch.Tensor:
    """Run the whole model on images ``idx`` of ``split`` (flipped by ``flips``, ±1 per
    image, or only normalised when None) as a step would (under the trainer's autocast when
    ``autocast``, else in float32 as validation runs), and return what ``head`` received.

    Raises ``ValueError`` when the model's output is not the head's own output (the head
    runs twice, or the model changes its output after it): then the head's inputs do not
    determine the logits and cannot stand in for the images."""
    pixels = split.batch(idx, t.device)
    x = t.augment.with_flips(pixels, flips) if flips is not None \
        else t.augment(pixels, None, train=False)
    if t.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = head.register_forward_hook(lambda _m, inputs, out: seen.append((inputs[0], out)))
    try:
        with t.autocast() if autocast else contextlib.nullcontext():
            out = t.bare_model(x)
    finally:
        hook.remove()
    if len(seen) != 1 or seen[0][1] is not out:
        raise ValueError("the model's output is not its last linear layer's output")
    return seen[0][0]


def open_cache(t: Trainer) -> tuple[FeatureCache | None, str]:
    """(a feature cache for ``t``, '') or (None, why not). Runs one training image through
    the model to learn the features' shape and check that the head's inputs decide the
    output."""
    reason = cache_refusal(t)
    if reason:
        return None, reason
    model = t.bare_model
    name = head_module_name(model)
    try:
        with torch.inference_mode(False), torch.no_grad():
            probe = head_inputs(t, t.data.train, torch.zeros(1, dtype=torch.int64), None,
                                model.get_submodule(name))
    except ValueError as exc:
        return None, str(exc)
    shape, dtype = tuple(probe.shape[1:]), probe.dtype
    rows = (2 if t.augment.flip else 1) * len(t.data.train) + len(t.data.val)
    size = rows * math.prod(shape) * probe.element_size()
    if size > FEATURE_MEMORY_LIMIT:
        return None, (f"{rows} feature rows of {math.prod(shape)} values would take "
                      f"{size / 2**30:.1f} GiB (limit {FEATURE_MEMORY_LIMIT / 2**30:.0f} GiB)")
    return FeatureCache(t, name, shape, dtype), ""


class FrozenBody:
    """What the fine-tuning callback does at each epoch start about a frozen body: when
    every group but the head is frozen and the head group is the last linear layer alone,
    eval mode for the whole model, and the feature cache when it can serve (else the pixel
    path, with the reason in the epoch record)."""

    def __init__(self, model: nn.Module, groups: list[LayerGroup]):
        self.names = [g.name for g in groups]
        head = head_module_name(model)
        linear = {f"{head}.{n}" for n, _ in model.get_submodule(head).named_parameters()}
        self.linear_head = any(g.name == HEAD and set(g.params) == linear for g in groups)
        self.cache: FeatureCache | None = None

    def epoch_start(self, t: Trainer, frozen: list[str]) -> None:
        """Apply the rule for the groups ``frozen`` this epoch (after ``set_frozen``)."""
        extras = t.record_extras
        if not body_frozen(self.names, frozen):
            t.head_inputs, self.cache = None, None
            if "feature_cache" in extras:
                extras["feature_cache"] = False
                extras.pop("feature_cache_off", None)
            return
        if not self.linear_head:     # e.g. a timm head with its own norm: it trains as it is
            t.head_inputs, self.cache = None, None
            extras.update(feature_cache=False, feature_cache_off="the head group holds more "
                          "than the last linear layer")
            return
        t.model.eval()           # the body, and any dropout before the head, as at inference
        reason = ""
        if self.cache is None or not self.cache.valid_for(t):
            self.cache, reason = open_cache(t)
        t.head_inputs = self.cache
        extras["feature_cache"] = self.cache is not None
        extras.setdefault("feature_seconds", 0.0)
        if reason:
            extras["feature_cache_off"] = reason
        else:
            extras.pop("feature_cache_off", None)
