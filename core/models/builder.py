"""A from-scratch CNN builder: stages of 3×3 convolutions, optional BatchNorm,
max-pooling between stages, dropout, and global (or flattened) pooling into a head.

``CNNSpec`` says what to build in the user's words (depth, width, BatchNorm,
dropout, global pooling); ``build_cnn`` turns it into an ``nn.Sequential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class CNNSpec:
    """What ``build_cnn`` builds: one stage of ``convs_per_stage`` 3×3 convolutions per entry
    of ``widths`` (max-pooling between stages), optional BatchNorm, then ``global_pool``
    (``avg``, ``max``, ``avgmax`` or ``flatten``), ``hidden`` fully connected layers and
    ``dropout`` before the classifier.
    """
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # one stage per width
    convs_per_stage: int = 1          # depth: 3×3 convs in each stage
    batchnorm: bool = True
    dropout: float = 0.0              # before the classifier
    global_pool: str = "avg"          # avg | max | avgmax | flatten
    hidden: list[int] = field(default_factory=list)  # fully connected layers before the output
    pool_after_last: bool = False     # max-pool after the last stage too


def build_cnn(spec: CNNSpec, num_classes: int, in_channels: int, image_size: int) -> nn.Sequential:
    """Build the network; ``image_size`` matters only for ``global_pool='flatten'``."""
    layers: list[nn.Module] = []
    c_in, side = in_channels, image_size
    for stage, width in enumerate(spec.widths):
        for _ in range(spec.convs_per_stage):
            layers.append(nn.Conv2d(c_in, width, 3, padding=1, bias=not spec.batchnorm))
            if spec.batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            c_in = width
        last = stage == len(spec.widths) - 1
        if (not last or spec.pool_after_last) and side >= 2:
            layers.append(nn.MaxPool2d(2))
            side //= 2
    if spec.global_pool == "flatten":
        layers.append(nn.Flatten())
        features = c_in * side * side
    else:
        layers.append(_GlobalPool(spec.global_pool))
        features = c_in * (2 if spec.global_pool == "avgmax" else 1)
    for width in spec.hidden:
        layers += [nn.Linear(features, width), nn.ReLU(inplace=True)]
        if spec.dropout:
            layers.append(nn.Dropout(spec.dropout))
        features = width
    if spec.dropout and not spec.hidden:
        layers.append(nn.Dropout(spec.dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


class _GlobalPool(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("avg", "max", "avgmax"):
            raise ValueError(f"unknown global pooling {kind!r}")
        self.kind = kind

    def forward(self, x):
        if self.kind == "avg":
            return x.mean((2, 3))
        if self.kind == "max":
            return x.amax((2, 3))
        return __import__("torch").cat([x.mean((2, 3)), x.amax((2, 3))], 1)
