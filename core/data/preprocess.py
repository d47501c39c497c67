"""The one preprocessing contract: how a decoded image becomes a model's input.

``Preprocessing`` holds the whole rule, and its plain-dict form (``to_dict`` /
``from_dict``) is what a run's export bundle records in ``preprocessing.json``:

- **resize**: the image is converted to the model's mode (``L`` for 1 channel,
  ``RGB`` for 3) and squashed to ``image_size``×``image_size`` (the whole image
  is kept, the aspect ratio is not) with Pillow's bilinear filter and a
  ``reducing_gap`` of 3 (Pillow first reduces a much larger image by an integer
  factor with a box filter: faster, and the same in every path);
- **layout**: uint8 levels, channel-planar (C×H×W);
- **scaling**: ``x * scale + shift`` in float32, the precomputed form of
  ``(x / 255 - mean) / std`` (``scale`` and ``shift`` are float32 constants that
  every path uses as they are, so every path gets the same bits).

The decoded-pixel cache, the predictor and the demo's fast path, the prediction
service, evaluation and the export bundle all use this one object. An exported model
does the layout and scaling inside its graph: the bundle gives it only the resized
uint8 levels (``to_pixels``, H×W×C), so the resize is the one step outside the graph.

This module imports only numpy and Pillow, never torch nor another project
module: the export bundle ships this very file beside its ``predict.py``, so the
bundle's resize is this code, not a copy that could drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

RESIZE_RULE = "squash"               # the whole image to size×size, aspect ratio not kept
RESIZE_FILTERS = {"bilinear": Image.Resampling.BILINEAR}
DEFAULT_FILTER = "bilinear"
DEFAULT_REDUCING_GAP = 3.0
MODES = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class Preprocessing:
    """A model's input contract: resize rule, size, channels, mean and std.

    ``mean`` and ``std`` are per channel, on the 0–1 scale; left out they are 0 and 1
    (no normalisation), which is all the decoded-pixel cache needs: it stores the
    resized uint8 levels, before scaling.
    """

    image_size: int
    channels: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize_filter: str = DEFAULT_FILTER
    reducing_gap: float | None = DEFAULT_REDUCING_GAP
    scale: np.ndarray = field(init=False, repr=False, compare=False)
    shift: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.channels not in MODES:
            raise ValueError(f"a model takes 1 or 3 channels, not {self.channels}")
        if not 1 <= int(self.image_size) <= 4096:
            raise ValueError(f"image size {self.image_size} is out of range")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"unknown resize filter {self.resize_filter!r}; "
                             f"known: {', '.join(RESIZE_FILTERS)}")
        mean = tuple(float(v) for v in self.mean) if self.mean is not None else (0.0,) * self.channels
        std = tuple(float(v) for v in self.std) if self.std is not None else (1.0,) * self.channels
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values each, "
                             f"not {len(mean)} and {len(std)}")
        if not all(np.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"std must be positive, not {list(std)}")
        object.__setattr__(self, "image_size", int(self.image_size))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        # (x / 255 - mean) / std  ==  x * scale + shift, in float32, once per contract
        std32 = np.asarray(std, dtype=np.float32)
        scale = np.float32(1.0) / (np.float32(255.0) * std32)
        shift = -np.asarray(mean, dtype=np.float32) / std32
        object.__setattr__(self, "scale", scale.astype(np.float32))
        object.__setattr__(self, "shift", shift.astype(np.float32))

    @property
    def mode(self) -> str:
        """The Pillow mode the model's images are brought to: ``L`` or ``RGB``."""
        return MODES[self.channels]

    def resize(self, img: Image.Image) -> Image.Image:
        """The resize rule: ``img`` in the model's mode at ``image_size``×``image_size``.

        An image already in that mode and size is returned as it is.
        """
        if img.mode != self.mode:
            img = img.convert(self.mode)
        size = self.image_size
        if img.size != (size, size):
            img = img.resize((size, size), RESIZE_FILTERS[self.resize_filter],
                             reducing_gap=self.reducing_gap)
        return img

    def to_array(self, img: Image.Image) -> np.ndarray:
        """One decoded image → its uint8 C×H×W levels, exactly as the cache stores them."""
        return planar(np.asarray(self.resize(img), dtype=np.uint8))

    def to_pixels(self, img: Image.Image) -> np.ndarray:
        """One decoded image → uint8 H×W×C at the model's size: an exported model's input
        (the same levels as ``to_array``, interleaved)."""
        pixels = np.asarray(self.resize(img), dtype=np.uint8)
        return pixels[..., None] if pixels.ndim == 2 else pixels

    def array_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded pixels kept as a uint8 H×W or H×W×3 array → uint8 C×H×W levels.

        The same as ``to_array`` on the image the array holds; an array already in the
        model's size and channels is only re-laid out.
        """
        size = self.image_size
        if pixels.shape[:2] == (size, size) and (pixels.ndim == 2) == (self.channels == 1):
            return planar(pixels)
        return self.to_array(Image.fromarray(pixels))

    def normalise(self, levels: np.ndarray) -> np.ndarray:
        """uint8 levels (C×H×W or N×C×H×W) → the float32 input: ``levels * scale + shift``."""
        levels = np.asarray(levels)
        shape = (-1, 1, 1)
        x = levels.astype(np.float32)
        x *= self.scale.reshape(shape)
        x += self.shift.reshape(shape)
        return x

    def to_input(self, images: list[Image.Image]) -> np.ndarray:
        """Decoded images → the float32 N×C×H×W batch a model takes."""
        return self.normalise(np.stack([self.to_array(img) for img in images]))

    def to_dict(self) -> dict:
        """The contract as plain JSON-able data (``from_dict`` reads it back)."""
        return {"image_size": self.image_size, "channels": self.channels,
                "mode": self.mode,
                "resize": {"rule": RESIZE_RULE, "filter": self.resize_filter,
                           "reducing_gap": self.reducing_gap},
                "layout": "CHW",
                "scale": "levels / 255, then (x - mean) / std, as levels * scale + shift "
                         "in float32",
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """The contract ``to_dict`` wrote; a resize rule this code does not know is refused."""
        resize = data.get("resize")
        if not isinstance(resize, dict) or resize.get("rule") != RESIZE_RULE:
            raise ValueError(f"unknown resize rule {resize!r}; this code implements "
                             f"{RESIZE_RULE!r}")
        gap = resize.get("reducing_gap")
        return cls(int(data["image_size"]), int(data["channels"]), tuple(data["mean"]),
                   tuple(data["std"]), resize_filter=resize.get("filter", DEFAULT_FILTER),
                   reducing_gap=None if gap is None else float(gap))


def planar(pixels: np.ndarray) -> np.ndarray:
    """uint8 H×W or H×W×C pixels → C×H×W (a view where it can be)."""
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
