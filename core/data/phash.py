"""Perceptual hashes: a 64-bit difference hash (dHash) per image, and Hamming distance.

``dhash(img)`` shrinks the luma to 9×8 and sets one bit per horizontally adjacent
pair (left brighter than right). Near-identical images (re-encoded, resized,
slightly brightened) differ in a few bits; unrelated images in about 32.

Hashes are stored in ``images.phash`` as *signed* 64-bit integers so that SQLite's
INTEGER holds every value; ``hamming`` accepts either signedness.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_MASK = (1 << 64) - 1


def dhash(img: Image.Image) -> int:
    """The 64-bit difference hash of ``img`` as a signed 64-bit int."""
    small = img.convert("L").resize((9, 8), Image.Resampling.BOX)
    px = np.asarray(small, dtype=np.int16)
    bits = np.packbits(px[:, :-1] > px[:, 1:])  # row-major, first pixel pair = top bit
    return to_signed(int.from_bytes(bits.tobytes(), "big"))


def to_signed(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK).bit_count()


def near_groups(ids: np.ndarray, hashes: np.ndarray, max_distance: int = 4) -> list[list[int]]:
    """Groups of image ids whose hashes chain within ``max_distance`` bits.

    Identical hashes are merged first; distinct hashes are compared only when they
    agree exactly on one of ``max_distance + 1`` bands (pigeonhole principle: two
    hashes within the distance must), so the cost stays near linear.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        return []
    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    uniq, inverse = np.unique(h, return_inverse=True)
    parent = np.arange(len(uniq))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    nb = max_distance + 1
    edges = np.linspace(0, 64, nb + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (uniq >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(band, kind="stable")
        sb = band[order]
        starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
        ends = np.r_[starts[1:], len(sb)]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            members = order[s:e]
            mh = uniq[members]
            for c0 in range(0, len(members), 256):
                rows = mh[c0:c0 + 256]
                dist = np.bitwise_count(rows[:, None] ^ mh[None, :])
                ii, jj = np.nonzero(dist <= max_distance)
                for a, b in zip(ii + c0, jj):
                    if a < b:
                        ra, rb = find(int(members[a])), find(int(members[b]))
                        if ra != rb:
                            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(len(uniq))], dtype=np.int64)[inverse.ravel()]
    groups: dict[int, list[int]] = {}
    for image_id, root in zip(ids.tolist(), roots.tolist()):
        groups.setdefault(root, []).append(image_id)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
