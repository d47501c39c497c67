"""``create_model``: one factory for every architecture the trainer knows.

Names resolve in this order: the presets, torchvision's names (torchvision wins where
timm knows the name too, e.g. ``resnet18``), then any timm model name; ``timm/NAME``
forces timm.
"""

from __future__ import annotations

from torch import nn

from core.errors import ImageLabError
from core.models.presets import PRESET_DESCRIPTIONS, build_preset
from core.models.timm_models import TIMM_PREFIX, TIMM_SUGGESTIONS, build_timm, timm_name
from core.models.torchvision_models import MIN_IMAGE_SIZE, TORCHVISION_ARCHS, build_torchvision

ARCH_DESCRIPTIONS = {**PRESET_DESCRIPTIONS, **TORCHVISION_ARCHS, **TIMM_SUGGESTIONS}


def list_archs() -> list[str]:
    """The architecture names to offer: the presets, the torchvision ones, then a few timm
    suggestions (``create_model`` accepts any other timm name too)."""
    return list(ARCH_DESCRIPTIONS)


def canonical_arch(arch: str) -> str:
    """The name a run records for ``arch``: ``timm/NAME`` becomes ``NAME`` unless a preset or
    torchvision takes the plain name (then the prefix is what selects timm)."""
    if arch.startswith(TIMM_PREFIX):
        plain = arch[len(TIMM_PREFIX):]
        return arch if plain in PRESET_DESCRIPTIONS or plain in TORCHVISION_ARCHS else plain
    return arch


def create_model(arch: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build ``arch`` with fresh weights for ``num_classes`` classes of
    ``in_channels``×``image_size``×``image_size`` images."""
    if num_classes < 2:
        raise ImageLabError(f"a classifier needs at least 2 classes, got {num_classes}")
    if arch in PRESET_DESCRIPTIONS:
        return build_preset(arch, num_classes, in_channels, image_size)
    if arch in TORCHVISION_ARCHS:
        need = MIN_IMAGE_SIZE.get(arch, 1)
        if image_size < need:
            raise ImageLabError(f"{arch} needs images of at least {need} px; "
                                f"choose a larger image size (got {image_size})")
        return build_torchvision(arch, num_classes, in_channels)
    name = timm_name(arch)
    if name is not None:
        return build_timm(name, num_classes, in_channels, image_size)
    raise ImageLabError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_archs())}"
                        " or any timm model name (timm.list_models())")
