"""Models: the from-scratch CNN builder, presets, torchvision architectures, one factory.

``create_model(arch, num_classes, in_channels, image_size)`` is the only entry point the
trainer uses; ``list_archs()`` names every architecture it accepts.
"""

from core.models.factory import ARCH_DESCRIPTIONS, create_model, list_archs

__all__ = ["create_model", "list_archs", "ARCH_DESCRIPTIONS"]
