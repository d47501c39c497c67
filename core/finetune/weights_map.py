"""Load weights of another naming scheme: by name where the names match, else by order.

A weights file made by another library names its tensors its own way (lukemelas'
EfficientNet says ``_conv_stem.weight`` and ``_blocks.0._depthwise_conv.weight`` where timm
says ``conv_stem.weight`` and ``blocks.0.0.conv_dw.weight``), but the same network holds the
same tensors in the same order. ``map_state(model, source)`` renames ``source`` to the
model's names:

- **by name** when every tensor of the model's body has its name in ``source`` (or when
  order fails too and some names are the model's: ``adapt_state`` then says, by name,
  which tensors differ);
- **by order** otherwise, when both hold the same number of tensors and every one has the
  model's shape in turn. ``num_batches_tracked`` counters are ignored on both sides; the
  first convolution may differ in its input channels (``heads.adapt_state`` adapts it); the
  source's final weight/bias pair is the model's head whatever its class count
  (``adapt_state`` rebuilds the head for the new classes).

A mismatch is an ``ImageLabError`` naming the first tensor that differs (its index, the
source's name and shape, the model's name and shape) or the two tensor counts. What was
mapped and how is a ``MappingReport``, stored with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from core.errors import ImageLabError
from core.finetune.groups import head_module_name

COUNTER = "num_batches_tracked"
EXAMPLES = 3      # pairs shown from the start of the order, plus the head's pair


@dataclass
class MappingReport:
    """How a source state dict was matched to a model: ``name`` or ``order``, how many
    tensors, and a few (source name, model name) pairs."""
    method: str
    count: int
    examples: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The report as a plain dict (``method``, ``count``, ``examples`` as [source, model])."""
        return {"method": self.method, "count": self.count,
                "examples": [list(pair) for pair in self.examples]}

    def describe(self) -> str:
        """One line for people (``describe_mapping``)."""
        return describe_mapping(self.to_dict())


def describe_mapping(report: dict) -> str:
    """A stored report in one line, e.g. ``mapped by order: 247 tensors (_conv_stem.weight →
    conv_stem.weight, …)``."""
    how = "matched by name" if report["method"] == "name" else "mapped by order"
    pairs = ", ".join(f"{a} → {b}" for a, b in report["examples"]) \
        if report["method"] == "order" else ""
    return f"{how}: {report['count']} tensors" + (f" ({pairs}, …)" if pairs else "")


def _shape(t) -> str:
    return "×".join(str(d) for d in t.shape) or "scalar"


def map_state(model: nn.Module, source: dict, *, label: str = "the weights file"
              ) -> tuple[dict, MappingReport]:
    """``source`` under ``model``'s tensor names, and how it was mapped (see the module)."""
    target = model.state_dict()
    head = head_module_name(model)
    heads = [k for k in (f"{head}.weight", f"{head}.bias") if k in target]
    src_keys = [k for k in source if not k.endswith(COUNTER)]
    tgt_keys = [k for k in target if not k.endswith(COUNTER)]
    shared = [k for k in src_keys if k in target]
    if all(k in source for k in tgt_keys if k not in heads):
        return dict(source), MappingReport("name", len(shared), [(k, k) for k in shared[:EXAMPLES]])
    try:
        pairs = _order_pairs(source, src_keys, target, tgt_keys, heads, label)
    except ImageLabError:
        if shared:       # partly the model's names: adapt_state says which tensors differ
            return dict(source), MappingReport("name", len(shared),
                                               [(k, k) for k in shared[:EXAMPLES]])
        raise
    examples = pairs[:EXAMPLES] + [p for p in pairs[EXAMPLES:] if p[1] in heads][:1]
    return {t: source[s] for s, t in pairs}, MappingReport("order", len(pairs), examples)


def _order_pairs(source: dict, src_keys: list[str], target: dict, tgt_keys: list[str],
                 heads: list[str], label: str) -> list[tuple[str, str]]:
    """(source name, model name) in order; raises at the first pair that cannot be one."""
    if len(src_keys) != len(tgt_keys):
        raise ImageLabError(
            f"{label} does not fit this model: its names are not the model's and it holds "
            f"{len(src_keys)} tensors where the model has {len(tgt_keys)} (not counting "
            f"{COUNTER}), so they cannot be matched in order either. Choose the architecture "
            "it was trained with (--arch)")
    first_conv = next((k for k in tgt_keys if target[k].ndim == 4), None)
    body = [k for k in tgt_keys if k not in heads]
    n_body = len(body)
    pairs = list(zip(src_keys[:n_body], body)) + list(zip(src_keys[n_body:], heads))
    for index, (s, t) in enumerate(pairs):
        sv, tv = source[s], target[t]
        if sv.shape == tv.shape:
            continue
        if t == first_conv and sv.ndim == 4 and sv.shape[0] == tv.shape[0] \
                and sv.shape[2:] == tv.shape[2:]:
            continue           # another input channel count: adapt_state adapts it
        if t in heads and sv.ndim == tv.ndim and sv.shape[1:] == tv.shape[1:]:
            continue           # another class count: adapt_state rebuilds the head
        raise ImageLabError(
            f"{label} does not fit this model: its names are not the model's, and in order "
            f"tensor {index} differs: {s} ({_shape(sv)}) where the model has {t} ({_shape(tv)}). "
            "Choose the architecture it was trained with (--arch)")
    return pairs
