"""Perceptual hashes: a 64-bit difference hash (dHash) per image, and Hamming distance.

``dhash_batch`` shrinks each luma image of a same-sized stack to 9×8 by exact area
averaging (two small matrix products for the whole stack) and sets one bit per
horizontally adjacent pair (left brighter than right). Near-identical images
(re-encoded, resized, slightly brightened) differ in a few bits; unrelated images in
about 32.

Hashes are stored in ``images.phash`` as *signed* 64-bit integers so that SQLite's
INTEGER holds every value; ``hamming`` accepts either signedness.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_MASK = (1 << 64) - 1


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)   # ITU-R 601, as PIL's "L"


def dhash_batch(luma: np.ndarray) -> np.ndarray:
    """Hashes (signed int64) of N same-sized luma images, an N×H×W float array."""
    n, h, w = luma.shape
    rows, cols = _area_weights(h, 8), _area_weights(w, 9)
    small = rows @ luma.astype(np.float32, copy=False) @ cols.T        # N×8×9
    bits = np.packbits((small[:, :, :-1] > small[:, :, 1:]).reshape(n, 64), axis=1)
    return bits.view(">u8").reshape(n).astype(np.uint64).view(np.int64)


@lru_cache(maxsize=64)
def _area_weights(size: int, out: int) -> np.ndarray:
    """out×size matrix averaging ``size`` pixels into ``out`` equal bins by area."""
    edges = np.arange(out + 1) * (size / out)
    lo, hi = np.arange(size), np.arange(1, size + 1)
    overlap = np.clip(np.minimum(hi[None, :], edges[1:, None]) -
                      np.maximum(lo[None, :], edges[:-1, None]), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK).bit_count()


def near_groups(ids: np.ndarray, hashes: np.ndarray, max_distance: int = 4) -> list[list[int]]:
    """Groups of image ids whose hashes chain within ``max_distance`` bits.

    Identical hashes are merged first; distinct hashes are compared only when they
    agree exactly on one of ``max_distance + 1`` bands (pigeonhole principle: two
    hashes within the distance must), so the cost stays near linear. The pairs found
    are joined into groups by ``connected_components``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        return []
    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    uniq, inverse = np.unique(h, return_inverse=True)
    heads, tails = [], []
    nb = max_distance + 1
    edges = np.linspace(0, 64, nb + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (uniq >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(band, kind="stable")
        sb = band[order]
        starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
        ends = np.r_[starts[1:], len(sb)]
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = order[s:e]
            mh = uniq[members]
            for c0 in range(0, len(members), 256):
                rows = mh[c0:c0 + 256]
                ii, jj = np.nonzero(np.bitwise_count(rows[:, None] ^ mh[None, :]) <= max_distance)
                keep = ii + c0 < jj
                heads.append(members[ii[keep] + c0])
                tails.append(members[jj[keep]])
    if not heads:
        return _groups_of(ids, inverse.ravel())
    component = connected_components(len(uniq), np.concatenate(heads), np.concatenate(tails))
    return _groups_of(ids, component[inverse.ravel()])


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (its smallest member) of each of ``n`` nodes joined by edges a–b.

    Hook-and-compress in whole-array steps: every edge hooks the larger of its two
    roots under the smaller, then pointer jumping flattens the trees; a few rounds
    suffice (logarithmic in the longest chain), each linear in the edges.
    """
    label = np.arange(n)
    while True:
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            return label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def _groups_of(ids: np.ndarray, keys: np.ndarray) -> list[list[int]]:
    """Ids sharing a key, for keys held by more than one id; sorted groups, by first id."""
    order = np.lexsort((ids, keys))
    k, v = keys[order], ids[order]
    cuts = np.flatnonzero(k[1:] != k[:-1]) + 1
    groups = [g.tolist() for g in np.split(v, cuts) if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])
