"""``create_model``: one factory for every architecture the trainer knows."""

from __future__ import annotations

from torch import nn

from core.errors import ImageLabError
from core.models.presets import PRESET_DESCRIPTIONS, build_preset
from core.models.torchvision_models import MIN_IMAGE_SIZE, TORCHVISION_ARCHS, build_torchvision

ARCH_DESCRIPTIONS = {**PRESET_DESCRIPTIONS, **TORCHVISION_ARCHS}


def list_archs() -> list[str]:
    """Every architecture name ``create_model`` accepts: the presets, then the torchvision ones."""
    return list(ARCH_DESCRIPTIONS)


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
    raise ImageLabError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_archs())}")
