"""Named from-scratch networks.

- ``compact-deep``: the default on small images: four BatchNorm stages (16-32-64-128, two
  3×3 convs each), avg+max global pooling. About 1.3× the multiply-adds of ``compact`` but
  twice its depth and a receptive field that covers a whole 32 px image, so it learns
  shapes in a few epochs where ``compact`` stays at chance (docs/DECISIONS.md).
- ``compact``: the default before ``compact-deep`` (kept so earlier runs still load): three
  BatchNorm stages (32-64-128, one conv each), avg+max global pooling.
- ``pytorch-cnn``: the PyTorch-tutorial-style CNN: conv 64 → pool → conv 128 → pool →
  fully connected 1024 → 512 → classes.
- ``keras-mnist``: the Keras MNIST example: conv 32 → pool → conv 64 → pool → dense 128 →
  dropout 0.5 → dense classes.
- ``wide``: a wider, deeper builder net for bigger datasets.
"""

from __future__ import annotations

from torch import nn

from core.models.builder import CNNSpec, build_cnn

PRESET_SPECS: dict[str, CNNSpec] = {
    "compact-deep": CNNSpec(widths=[16, 32, 64, 128], convs_per_stage=2, batchnorm=True,
                            dropout=0.1, global_pool="avgmax"),
    "compact": CNNSpec(widths=[32, 64, 128], convs_per_stage=1, batchnorm=True,
                       dropout=0.1, global_pool="avgmax"),
    "pytorch-cnn": CNNSpec(widths=[64, 128], convs_per_stage=1, batchnorm=False,
                           global_pool="flatten", hidden=[1024, 512], pool_after_last=True),
    "keras-mnist": CNNSpec(widths=[32, 64], convs_per_stage=1, batchnorm=False, dropout=0.5,
                           global_pool="flatten", hidden=[128], pool_after_last=True),
    "wide": CNNSpec(widths=[64, 128, 256], convs_per_stage=2, batchnorm=True,
                    dropout=0.2, global_pool="avgmax"),
}

PRESET_DESCRIPTIONS = {
    "compact-deep": "compact deep CNN: 4 BatchNorm stages 16-32-64-128, two convs each, "
                    "global pooling (the default on small images)",
    "compact": "compact CNN: 3 BatchNorm conv stages 32-64-128, one conv each, global pooling",
    "pytorch-cnn": "PyTorch CNN: conv 64 → conv 128 with max-pooling → FC 1024 → 512 → classes",
    "keras-mnist": "Keras MNIST net: conv 32 → pool → conv 64 → pool → dense 128 → dropout 0.5",
    "wide": "wide CNN: 3 BatchNorm stages 64-128-256, two convs each",
}


def build_preset(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The preset network ``name`` (a key of ``PRESET_SPECS``), freshly initialised, for
    ``num_classes`` classes of ``in_channels``×``image_size``×``image_size`` images.
    """
    return build_cnn(PRESET_SPECS[name], num_classes, in_channels, image_size)
