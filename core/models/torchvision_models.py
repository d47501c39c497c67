"""torchvision architectures built from scratch (``weights=None``), adapted to the data.

The first convolution is rebuilt for the dataset's channel count (1-channel digits and
MNIST work), and the classifier for its number of classes. Pretrained weights belong to
fine-tuning, not here.
"""

from __future__ import annotations

from torch import nn

TORCHVISION_ARCHS = {
    "resnet18": "ResNet-18 (11 M parameters)",
    "resnet34": "ResNet-34 (21 M parameters)",
    "resnet50": "ResNet-50 (25 M parameters)",
    "mobilenet_v3_small": "MobileNetV3-Small (2.5 M parameters)",
    "mobilenet_v3_large": "MobileNetV3-Large (5.5 M parameters)",
    "efficientnet_b0": "EfficientNet-B0 (5.3 M parameters)",
    "convnext_tiny": "ConvNeXt-Tiny (28 M parameters)",
}

# Smallest input each network accepts (ConvNeXt's 4×4 stem and 2×2 downsamplings need 32 px).
MIN_IMAGE_SIZE = {"convnext_tiny": 32}


def build_torchvision(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's ``arch`` with random weights and a ``num_classes``-way classifier;
    the first convolution is rebuilt when ``in_channels`` is not 3.
    """
    import torchvision.models as tvm
    model = getattr(tvm, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            new = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride,
                            module.padding, module.dilation, module.groups, module.bias is not None)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, new)
            return
    raise ValueError("no 3-channel input convolution found")
