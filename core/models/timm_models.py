"""timm architectures: any model name timm knows, built from scratch and grouped by timm.

``timm`` (PyTorch Image Models) is the architecture library for every network that is not
a preset or a torchvision name: ``timm_name`` says whether timm knows a name (``timm/NAME``
forces timm where torchvision knows the name too), ``build_timm`` builds it with fresh
weights, ``timm_groups`` names its layer groups from timm's own metadata
(``group_matcher``, the pretrained config's classifier), ``pretrained_config`` reads its
pretrained config (input size, mean/std, hub id) without building it. timm is imported
inside these functions: importing it costs about half a second, and the pages that only
list architectures never need it.
"""

from __future__ import annotations

from torch import nn

TIMM_PREFIX = "timm/"
# A short curated list for pickers (any other timm name works too); measured parameter
# counts at 1000 classes.
TIMM_SUGGESTIONS = {
    "efficientnet_lite0": "EfficientNet-Lite0 (timm, 4.7 M parameters; ImageNet weights "
                          "ship offline)",
    "mobilenetv3_large_100": "MobileNetV3-Large 1.0 (timm, 5.5 M parameters)",
    "convnext_atto": "ConvNeXt-Atto (timm, 3.7 M parameters)",
    "regnetx_002": "RegNetX-200MF (timm, 2.7 M parameters)",
}


def timm_name(arch: str) -> str | None:
    """The timm model name ``arch`` stands for (``timm/NAME`` or a plain name timm knows),
    else None."""
    import timm
    name = arch[len(TIMM_PREFIX):] if arch.startswith(TIMM_PREFIX) else arch
    return name if name and timm.is_model(name) else None


def build_timm(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """timm's ``name`` with random weights, a ``num_classes``-way classifier and
    ``in_channels`` input channels; a model of fixed input size (a ViT) is built for
    ``image_size``."""
    import timm
    kwargs = {"img_size": image_size} if pretrained_config(name).get("fixed_input_size") else {}
    return timm.create_model(name, pretrained=False, num_classes=num_classes,
                             in_chans=in_channels, **kwargs)


def pretrained_config(name: str) -> dict:
    """timm's pretrained config of ``name`` (``NAME`` or ``NAME.TAG``: ``input_size``, ``mean``,
    ``std``, ``hf_hub_id``, ``url``, ``classifier``, ``license``…) as a dict; {} if none."""
    import timm
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:        # an unknown tag
        return {}
    return cfg.to_dict() if cfg is not None else {}


def is_timm_model(model: nn.Module) -> bool:
    """True for a model built by timm (it carries timm's metadata)."""
    return callable(getattr(model, "group_matcher", None)) and \
        isinstance(getattr(model, "pretrained_cfg", None), dict)


def classifier_prefixes(model: nn.Module) -> list[str]:
    """The module names of a timm model's classifier (``pretrained_cfg['classifier']``,
    else the module ``get_classifier()`` returns)."""
    names = model.pretrained_cfg.get("classifier")
    names = [names] if isinstance(names, str) else list(names or [])
    modules = dict(model.named_modules())
    names = [n for n in names if n in modules and any(True for _ in modules[n].parameters())]
    if not names and callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()
        names = [n for n, m in model.named_modules() if m is head and n]
    return names


def timm_groups(model: nn.Module, head: str = "head") -> list[tuple[str, list[str]]]:
    """(group name, parameter names) in input-to-output order, from timm's coarse
    ``group_matcher``: group 0 is ``stem``, the classifier's parameters are the group
    ``head`` (last), and every other group is named by its parameters' common prefix
    (``blocks.0``, ``layer1``) or, where they share none, by their joined units
    (``blocks.6+conv_head+bn2``)."""
    from timm.models import group_parameters
    heads = tuple(p + "." for p in classifier_prefixes(model))
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    out: list[tuple[str, list[str]]] = []
    head_params = [n for n, _ in model.named_parameters() if n.startswith(heads)]
    used = {head}
    for index in sorted(grouped):
        params = [n for n in grouped[index] if not n.startswith(heads)]
        if not params:
            continue
        name = "stem" if not out else _group_label(params, head)
        if name in used:
            name = f"{name}#{index}"
        used.add(name)
        out.append((name, params))
    return out + ([(head, head_params)] if head_params else [])


def _group_label(params: list[str], head: str) -> str:
    paths = [p.split(".")[:-1] or [p] for p in params]
    common: list[str] = []
    for parts in zip(*paths):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    if common:
        label = _unit(common)
        return ".".join(common) if label == head else label
    units = []
    for path in paths:
        if _unit(path) not in units:
            units.append(_unit(path))
    return "+".join(units)


def _unit(path: list[str]) -> str:
    """``blocks.6`` for blocks.6.…, ``layer1`` for layer1.0.…, ``conv_head`` for conv_head."""
    return ".".join(path[:2]) if len(path) > 1 and path[1].isdigit() else path[0]
