"""Per-image statistics, measured once at import.

Every image gets (``batch_image_stats``) a perceptual hash, its brightness (mean
luma, 0–255), its sharpness (variance of the Laplacian of the luma) and its
per-channel means of x and x² (x in 0–1), all stored in the ``images`` table.
They are taken on the image shrunk to at most ``STATS_SIDE`` pixels a side
(``stats_pixels``). ``core.data.quality`` turns them into content flags and the
dataset quality report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.data.phash import LUMA, dhash_batch
from core.data.quality import content_flags

STATS_SIDE = 128         # statistics are taken on the image shrunk to at most this side
STATS_BATCH = 128        # images measured together (see batch_image_stats)


@dataclass
class ImageStats:
    """One image's statistics as stored in its row.

    ``phash`` is a 64-bit dHash (signed, as SQLite stores it); ``brightness`` the mean luma
    (0-255); ``sharpness`` the variance of the luma's Laplacian; ``means`` and ``squares``
    the per-channel means of x and x² with x in 0-1 (R, G, B; a grayscale image repeats
    its one channel).
    """
    phash: int
    brightness: float
    sharpness: float
    means: tuple[float, float, float]
    squares: tuple[float, float, float]

    @property
    def flags(self) -> int:
        """The content flags (dark, bright, blurry) these statistics earn, as a bit mask."""
        return content_flags(self.brightness, self.sharpness)


def stats_pixels(img: Image.Image) -> np.ndarray:
    """The uint8 pixels (H×W or H×W×3) statistics are taken on: the image itself, or
    shrunk to at most ``STATS_SIDE`` a side."""
    if max(img.size) > STATS_SIDE:
        img = img.copy()
        img.thumbnail((STATS_SIDE, STATS_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def batch_image_stats(pixels: list[np.ndarray]) -> list[ImageStats]:
    """``ImageStats`` of many images (uint8 H×W or H×W×3 arrays, see ``stats_pixels``).

    Images of the same shape are stacked and measured together, up to ``STATS_BATCH``
    at a time: on small images the cost is per call, not per pixel, so a few
    whole-stack operations replace a dozen calls per image. (Bounded stacks also keep
    the allocator out of trouble: 512 stacked 32×32 colour images made every later
    allocation of the import process slower.)
    """
    out: list[ImageStats | None] = [None] * len(pixels)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(pixels):
        groups.setdefault(p.shape, []).append(i)
    for group in groups.values():
        for start in range(0, len(group), STATS_BATCH):
            members = group[start:start + STATS_BATCH]
            for i, stats in zip(members, _stack_stats(np.stack([pixels[i] for i in members]))):
                out[i] = stats
    return out  # type: ignore[return-value]


def _stack_stats(stack: np.ndarray) -> list[ImageStats]:
    """Statistics of N same-shaped images, an N×H×W or N×H×W×3 uint8 stack."""
    stack = stack.astype(np.float32)
    n = len(stack)
    flat = stack.reshape(n, -1, 1 if stack.ndim == 3 else stack.shape[3])   # N × pixels × C
    ones = np.ones(flat.shape[1], dtype=np.float32)
    mv = (ones @ flat).astype(np.float64) / (flat.shape[1] * 255.0)   # sums as products
    qv = (ones @ np.square(flat)).astype(np.float64) / (flat.shape[1] * 65025.0)
    if flat.shape[2] == 1:
        luma = stack
        brightness = mv[:, 0] * 255.0
        mv, qv = np.repeat(mv, 3, axis=1), np.repeat(qv, 3, axis=1)
    else:
        luma = stack @ LUMA
        brightness = (mv @ LUMA.astype(np.float64)) * 255.0
    hashes = dhash_batch(luma).tolist()
    sharp = _laplacian_variances(luma).tolist()
    means, squares, bright = mv.tolist(), qv.tolist(), brightness.tolist()
    return [ImageStats(hashes[k], bright[k], sharp[k], tuple(means[k]), tuple(squares[k]))
            for k in range(n)]


def _laplacian_variances(luma: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each N×H×W image (0 under 3×3)."""
    n, h, w = luma.shape
    if h < 3 or w < 3:
        return np.zeros(n)
    lap = luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:]
    lap += luma[:, :-2, 1:-1]
    lap += luma[:, 2:, 1:-1]
    lap -= 4.0 * luma[:, 1:-1, 1:-1]
    flat = lap.reshape(n, -1)
    ones = np.ones(flat.shape[1], dtype=np.float32)
    mean = (flat @ ones).astype(np.float64) / flat.shape[1]
    sq = np.einsum("ij,ij->i", flat, flat).astype(np.float64) / flat.shape[1]
    return np.maximum(0.0, sq - mean * mean)
