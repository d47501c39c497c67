"""Fit a source state dict to a new model: a new head for the new class list.

Every body weight must match by name and shape (the first convolution may differ in its
input channels: RGB weights are summed for grey images, grey ones repeated for RGB). The
head (the final linear layer) is rebuilt for the target's classes; a class whose name is in
both class lists keeps its row of the source head. Anything that does not fit is reported by
name in one ``ImageLabError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import ImageLabError
from core.finetune.groups import head_module_name


@dataclass
class HeadReport:
    """What ``adapt_state`` did to the head: class rows kept from the source, new rows, and other
    adaptations."""
    kept: list[str] = field(default_factory=list)    # target classes whose head rows came over
    new: list[str] = field(default_factory=list)     # target classes with fresh rows
    adapted: list[str] = field(default_factory=list)  # notes (input channels, source classes)

    def to_dict(self) -> dict:
        """The report as a plain dict (``kept``, ``new``, ``adapted``)."""
        return {"kept": self.kept, "new": self.new, "adapted": self.adapted}


def _names(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def adapt_state(model: nn.Module, source: dict, source_classes: list[str] | None,
                target_classes: list[str], *, label: str = "the checkpoint") -> tuple[dict, HeadReport]:
    """The state dict for ``model`` built from ``source``, and what happened to the head."""
    target = model.state_dict()
    head = head_module_name(model)
    head_w, head_b = f"{head}.weight", f"{head}.bias"
    first_conv = next((k for k, v in target.items() if v.ndim == 4), None)
    out = {k: v.clone() for k, v in target.items()}
    report = HeadReport()
    missing = [k for k in target if k not in source and k not in (head_w, head_b)
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in source if k not in target]
    mismatched = []
    for key, value in source.items():
        if key not in target or key in (head_w, head_b):
            continue
        want = target[key]
        if value.shape == want.shape:
            out[key] = value.detach().to(want.dtype).clone()
        elif key == first_conv and value.ndim == 4 and value.shape[0] == want.shape[0] \
                and value.shape[2:] == want.shape[2:]:
            out[key] = adapt_input_conv(value, want.shape[1]).to(want.dtype)
            report.adapted.append(f"{key}: {value.shape[1]} → {want.shape[1]} input channels")
        else:
            mismatched.append(f"{key} (checkpoint {tuple(value.shape)}, model {tuple(want.shape)})")
    if head_w in source:
        sw = source[head_w]
        if sw.ndim != 2 or sw.shape[1] != target[head_w].shape[1]:
            mismatched.append(f"{head_w} (checkpoint {tuple(sw.shape)}, model takes "
                              f"{target[head_w].shape[1]} features)")
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} with another shape: {_names(mismatched, 4)}")
        if missing:
            parts.append(f"{len(missing)} missing from it: {_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} the model does not have: {_names(unexpected)}")
        raise ImageLabError(f"{label} does not fit this model — weights " + "; ".join(parts)
                            + ". Choose the architecture it was trained with")
    if head_w in source and source_classes and len(source_classes) == source[head_w].shape[0]:
        index = {name: i for i, name in enumerate(source_classes)}
        for row, name in enumerate(target_classes):
            if name in index:
                out[head_w][row] = source[head_w][index[name]].to(out[head_w].dtype)
                if head_b in source and head_b in out:
                    out[head_b][row] = source[head_b][index[name]].to(out[head_b].dtype)
                report.kept.append(name)
            else:
                report.new.append(name)
    else:
        report.new = list(target_classes)
        if head_w in source and not source_classes:
            report.adapted.append("the source has no class names: the head starts fresh")
    _zero_fresh_rows(out, head_w, head_b, [target_classes.index(n) for n in report.new])
    return out, report


def _zero_fresh_rows(state: dict, head_w: str, head_b: str, rows: list[int]) -> None:
    """A new class's head row starts at zero, not at the architecture's random init.

    Pretrained features are large (EfficientNet-Lite0's 1280 pooled features give a random
    timm head a weight norm of ~20 and a starting loss of 2.3 on 2 classes); a random row
    is a random projection that the head must first unlearn, and on a few hundred photos
    it never fully does: on the cats-dogs photos a linear probe ended at 86.7–90% from
    timm's init against 97.5% from zero (DECISIONS). A zero row starts at "no opinion";
    its first gradient is the class mean of the features."""
    if not rows:
        return
    index = torch.tensor(rows)
    state[head_w][index] = 0
    if head_b in state:
        state[head_b][index] = 0


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-conv weights for another channel count (as timm does): RGB → grey sums the
    three filters (a grey image seen as R = G = B gives the same response); grey → RGB
    repeats the filter and divides by 3; other counts cycle the channels and rescale."""
    c = weight.shape[1]
    if in_channels == 1:
        return weight.sum(1, keepdim=True)
    reps = -(-in_channels // c)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (c / in_channels)
