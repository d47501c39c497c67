"""Layer groups: the stem, each stage or block, and the head, for every architecture.

``layer_groups(model)`` names groups in input-to-output order:

- builder CNNs (``nn.Sequential``): ``stem`` (the first conv stage), ``stage2``…, ``fc``
  (hidden fully connected layers, if any), ``head`` (the final linear layer);
- ResNets: ``stem`` (conv1, bn1), ``layer1``…``layer4``, ``head`` (fc);
- MobileNet, EfficientNet, ConvNeXt: ``stem`` (features.0), ``features.1``…,
  ``classifier`` (what precedes the last linear layer), ``head``;
- timm models: timm's own coarse ``group_matcher`` (``core.models.timm_models.timm_groups``):
  ``stem``, then ``blocks.0``…, ``layer1``… or joined units (``blocks.6+conv_head+bn2``),
  and the classifier of the model's pretrained config as ``head``.

A frozen group has ``requires_grad=False`` and its BatchNorm layers stay in eval mode, so
their running statistics do not move either. ``lr_mult`` scales a group's learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from core.errors import ImageLabError
from core.models.timm_models import classifier_prefixes, is_timm_model, timm_groups

HEAD = "head"


@dataclass
class LayerGroup:
    """One layer group: its name, the names of its parameters, and their element count."""
    name: str
    params: list[str] = field(default_factory=list)
    num_params: int = 0


def head_module_name(model: nn.Module) -> str:
    """The name of the final linear layer (the classifier head); for a timm model, its
    classifier when that is a linear layer."""
    if is_timm_model(model):
        modules = dict(model.named_modules())
        linear = [n for n in classifier_prefixes(model) if isinstance(modules[n], nn.Linear)]
        if linear:
            return linear[0]
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ImageLabError("this model has no linear classifier layer to use as a head")
    return last


def _sequential_groups(model: nn.Sequential, head: str) -> dict[str, str]:
    """Top-level index -> group, for the builder's nn.Sequential."""
    out, current, stage, after_pool, convs_done = {}, None, 0, False, False
    for idx, child in model.named_children():
        if idx == head:
            out[idx] = HEAD
            continue
        if isinstance(child, nn.Conv2d) and not convs_done:
            if current is None or after_pool:
                stage += 1
                current = "stem" if stage == 1 else f"stage{stage}"
            after_pool = False
        elif isinstance(child, nn.MaxPool2d):
            after_pool = True
        elif isinstance(child, nn.Linear) or (current is not None and not isinstance(
                child, (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout))):
            convs_done = True
            current = "fc"
        out[idx] = current or "stem"
    return out


def group_of(model: nn.Module, param_name: str, head: str | None = None,
             _seq: dict | None = None) -> str:
    """The layer group a parameter belongs to (``stem``, a stage, ``head``…), by its name in
    ``model``."""
    head = head or head_module_name(model)
    if param_name.startswith(head + "."):
        return HEAD
    parts = param_name.split(".")
    if isinstance(model, nn.Sequential):
        seq = _seq if _seq is not None else _sequential_groups(model, head)
        return seq[parts[0]]
    if parts[0] in ("conv1", "bn1"):
        return "stem"
    if parts[0] == "features" and len(parts) > 1 and parts[1].isdigit():
        return "stem" if parts[1] == "0" else f"features.{parts[1]}"
    return parts[0]


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's layer groups in input-to-output order, the head last."""
    if is_timm_model(model):
        sizes = {n: p.numel() for n, p in model.named_parameters()}
        return [LayerGroup(name, params, sum(sizes[p] for p in params))
                for name, params in timm_groups(model, HEAD)]
    head = head_module_name(model)
    seq = _sequential_groups(model, head) if isinstance(model, nn.Sequential) else None
    groups: dict[str, LayerGroup] = {}
    for name, p in model.named_parameters():
        g = groups.setdefault(group_of(model, name, head, seq), LayerGroup(group_of(
            model, name, head, seq)))
        g.params.append(name)
        g.num_params += p.numel()
    ordered = [g for g in groups.values() if g.name != HEAD]
    return ordered + [groups[HEAD]] if HEAD in groups else ordered


def resolve_freeze(spec: str | list | None, names: list[str]) -> list[str]:
    """Frozen group names for a spec: ``none``, ``head`` (train the head only: a linear
    probe), ``last:N`` (train the last N groups), or group names (comma-separated or a list)."""
    if spec is None or spec == "" or spec == "none":
        return []
    if isinstance(spec, str) and spec == "head":
        return [n for n in names if n != HEAD]
    if isinstance(spec, str) and spec.startswith("last:"):
        try:
            n = int(spec[5:])
        except ValueError:
            raise ImageLabError(f"freeze {spec!r}: N in last:N must be a whole number") from None
        if not 1 <= n <= len(names):
            raise ImageLabError(f"freeze {spec!r}: this model has {len(names)} layer groups; "
                                f"choose N from 1 to {len(names)}")
        return names[:len(names) - n]
    wanted = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ImageLabError(f"unknown layer group(s) {', '.join(unknown)}; this model's groups "
                            f"are {', '.join(names)} (or use none, head, last:N)")
    return [n for n in names if n in wanted]


def resolve_lr_mults(spec: str | dict | None, names: list[str]) -> dict[str, float]:
    """Per-group learning-rate multipliers (missing groups: 1.0).

    ``{"stem": 0.1}``, ``"stem=0.1,layer1=0.3"``, or ``"discriminative:0.1"``: rates that
    grow geometrically from 0.1× at the first group to 1× at the head (fastai's slice)."""
    if not spec:
        return {n: 1.0 for n in names}
    if isinstance(spec, str) and spec.startswith("discriminative:"):
        try:
            lo = float(spec.split(":", 1)[1])
        except ValueError:
            raise ImageLabError(f"lr multipliers {spec!r}: expected discriminative:LOW, "
                                "e.g. discriminative:0.1") from None
        if not 0 < lo <= 1:
            raise ImageLabError("discriminative:LOW needs 0 < LOW <= 1")
        k = len(names) - 1
        return {n: round(lo ** ((k - i) / k), 6) if k else 1.0 for i, n in enumerate(names)}
    if isinstance(spec, str):
        pairs = {}
        for item in spec.split(","):
            name, sep, value = item.partition("=")
            try:
                pairs[name.strip()] = float(value)
            except ValueError:
                raise ImageLabError(f"lr multiplier {item!r}: expected GROUP=NUMBER") from None
            if not sep:
                raise ImageLabError(f"lr multiplier {item!r}: expected GROUP=NUMBER")
        spec = pairs
    unknown = [k for k in spec if k not in names]
    if unknown:
        raise ImageLabError(f"unknown layer group(s) {', '.join(unknown)} in the lr "
                            f"multipliers; this model's groups are {', '.join(names)}")
    bad = [k for k, v in spec.items() if not 0 <= float(v) <= 100]
    if bad:
        raise ImageLabError(f"lr multipliers must be between 0 and 100 ({', '.join(bad)})")
    return {n: float(spec.get(n, 1.0)) for n in names}


def param_groups(model: nn.Module, groups: list[LayerGroup], mults: dict[str, float],
                 weight_decay: float) -> list[dict]:
    """Optimizer param groups: per layer group (head first), decay and no-decay, each
    with its ``lr_mult`` (the engine's ``set_lr`` scales the rate by it)."""
    params = dict(model.named_parameters())
    out = []
    for g in sorted(groups, key=lambda g: g.name != HEAD):
        decay = [params[n] for n in g.params if params[n].ndim > 1]
        no_decay = [params[n] for n in g.params if params[n].ndim <= 1]
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if ps:
                out.append({"params": ps, "weight_decay": wd, "lr_mult": mults.get(g.name, 1.0),
                            "group": g.name})
    return out


def set_frozen(model: nn.Module, groups: list[LayerGroup], frozen: set[str] | list[str]) -> None:
    """Freeze these groups (no gradients, BatchNorm in eval mode); train every other one.
    Call after ``model.train()``: it only puts frozen BatchNorm layers into eval mode."""
    frozen = set(frozen)
    where = {p: g.name for g in groups for p in g.params}
    for name, p in model.named_parameters():
        p.requires_grad_(where[name] not in frozen)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            key = f"{name}.weight" if module.affine else None
            if key and where.get(key) in frozen:
                module.eval()


class FreezeSchedule:
    """Gradual unfreezing: ``frozen`` groups stay frozen until epoch ``unfreeze_after``
    (0: for the whole run), then every group trains at its own rate."""

    def __init__(self, groups: list[LayerGroup], frozen: list[str], unfreeze_after: int = 0):
        self.groups, self.frozen, self.unfreeze_after = groups, list(frozen), unfreeze_after

    def frozen_at(self, epoch: int) -> list[str]:
        """The groups frozen during ``epoch`` (0-based): ``frozen`` until ``unfreeze_after``, then
        none."""
        if self.unfreeze_after and epoch >= self.unfreeze_after:
            return []
        return self.frozen

    def __call__(self, t) -> None:
        set_frozen(t.bare_model, self.groups, self.frozen_at(t.epoch))
