"""Models: the from-scratch CNN builder, presets, torchvision and timm architectures, one factory.

``create_model(arch, num_classes, in_channels, image_size)`` is the only entry point the
trainer uses; ``list_archs()`` names the architectures to offer (any timm name works too).
"""

from core.models.factory import ARCH_DESCRIPTIONS, canonical_arch, create_model, list_archs

__all__ = ["create_model", "canonical_arch", "list_archs", "ARCH_DESCRIPTIONS"]
