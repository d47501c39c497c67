"""Semantic near-duplicates: pairs of images whose embeddings are almost the same.

Exact copies (same content hash) and dHash near-copies are found at import
(``core.data.quality``); this finds images that *mean* the same to the embedder — a re-encoded,
resized, slightly cropped or recoloured copy — including across splits, where a pair is
**leakage** (the model is tested on what it trained on).

**The default threshold is relative**: a pair counts when its cosine distance is at most
``RELATIVE_THRESHOLD`` (a tenth) of the set's median nearest-neighbour distance. Distances
differ by embedder (measured: median nearest-neighbour distance 0.053 on digits and 0.088
on mnist-5k with ``pixels``, 0.337 on the cats-dogs photos with the ImageNet backbone), so
one absolute number would flag half of one set and nothing of another. On the cats-dogs
photos the rule finds the one pair of near-identical photos (distance 0.018, while 99% of
photos have no neighbour closer than 0.176); on mnist-5k it keeps ~0.1% of the images.

The quality report (``core.data.quality``) cannot call this (``core.data`` sits below
``core.embeddings``), so pages show these pairs beside it by calling
``semantic_duplicates``.
"""

from __future__ import annotations

import numpy as np

from core.embeddings.index import exact_search, float_matrix, hnsw_index, uses_index
from core.embeddings.search import image_facts, stored_set
from core.embeddings.store import EmbeddingSet
from core.store.workspace import Workspace

RELATIVE_THRESHOLD = 0.1
SAMPLE = 2000               # rows whose nearest neighbour sets the typical distance
BLOCK = 1024                # rows per block of the exact all-pairs search
INDEX_K = 16                # neighbours per image read from the HNSW index (large sets)
MAX_PAIRS = 100_000


def default_max_distance(es: EmbeddingSet) -> float:
    """``RELATIVE_THRESHOLD`` × the median cosine distance from a row to its nearest other
    row (over at most ``SAMPLE`` evenly spaced rows)."""
    if len(es) < 2:
        return 0.0
    rows = np.linspace(0, len(es) - 1, min(len(es), SAMPLE)).astype(np.int64)
    nearest = []
    for start in range(0, len(rows), BLOCK):
        _, dist = _neighbours(es, rows[start:start + BLOCK], 2)
        nearest.append(dist[:, 1])
    return float(RELATIVE_THRESHOLD * np.median(np.concatenate(nearest)))


def semantic_duplicates(ws: Workspace, dataset: str, max_distance: float | None = None,
                        embedder: str | None = None) -> list[dict]:
    """Pairs of images of ``dataset`` within ``max_distance`` (cosine; None: the default
    rule), closest first, at most ``MAX_PAIRS``: ``{a, b, distance, split_a, split_b,
    label_a, label_b, leakage}`` with ``a < b``; ``leakage`` when the splits differ."""
    es = stored_set(ws, dataset, embedder)
    limit = default_max_distance(es) if max_distance is None else float(max_distance)
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(es), BLOCK):
        rows = np.arange(start, min(start + BLOCK, len(es)))
        found, dist = _neighbours(es, rows, INDEX_K if uses_index(len(es), es.dim) else None)
        for i, j in zip(*np.nonzero((dist <= limit) & (found >= 0))):
            a, b = int(rows[i]), int(found[i, j])
            if a != b:
                key = (min(a, b), max(a, b))
                pairs[key] = min(pairs.get(key, 9.0), float(dist[i, j]))
    best = sorted(pairs.items(), key=lambda p: p[1])[:MAX_PAIRS]
    ids = es.image_ids
    facts = image_facts(ws, {int(ids[r]) for pair, _ in best for r in pair})
    out = []
    for (ra, rb), d in best:
        a, b = int(ids[ra]), int(ids[rb])
        if a not in facts or b not in facts:
            continue                          # deleted since the embeddings were computed
        (label_a, split_a), (label_b, split_b) = facts[a], facts[b]
        out.append({"a": a, "b": b, "distance": max(d, 0.0), "split_a": split_a,
                    "split_b": split_b, "label_a": label_a, "label_b": label_b,
                    "leakage": split_a != split_b})
    return out


def _neighbours(es: EmbeddingSet, rows: np.ndarray, k: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, distances) of the neighbours of ``rows``: the ``k`` nearest (None: every row,
    exactly; the set is small then)."""
    q = es.vectors32(rows)
    if uses_index(len(es), es.dim):
        sims, found = hnsw_index(es).search(q, k or INDEX_K)
        return found.astype(np.int64), (1.0 - sims).astype(np.float32)
    matrix = float_matrix(es)
    if k is None:
        dist = 1.0 - q @ matrix.T
        return np.broadcast_to(np.arange(len(es)), dist.shape), dist
    return exact_search(matrix, q, k)
