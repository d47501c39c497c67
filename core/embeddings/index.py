"""Nearest neighbours over one stored set: exact numpy up to ``EXACT_MAX_VALUES`` values
(rows × dimensions), a faiss HNSW index above.

Vectors are L2-normalised, so the inner product is the cosine similarity and the distance
reported everywhere is the cosine distance ``1 - similarity`` (0 same direction, 2
opposite). **Exact** search is one matrix-vector product over the set held as float32 in
memory, then ``argpartition``. **HNSW** (``faiss.IndexHNSWFlat``, inner product, M=32,
efConstruction 80, efSearch 128) answers in about a millisecond at any size this app
meets; it is built once per set (by the embedding job, else at the first query), saved as
``index-hnsw.faiss`` in the set's version folder, so new vectors always get a new index.

The crossover was measured on this 2-core machine with 256-value vectors (docs/DECISIONS.md):
one exact query took 0.6 ms at 5k rows, ~8 ms at 20k, ~41 ms at 100k; HNSW took 0.2-2 ms at
every size but costs 1 s to build at 5k, 4 s at 20k, 50 s at 100k. An exact query costs rows ×
dimensions, so up to 5M values (20k×256, 4k×1280: about 8 ms, imperceptible) the exact path
answers with no index to build or keep; above, the index (built by the background job).
faiss over hnswlib: faiss-cpu ships wheels (hnswlib is source-only on our package index and
needs a compiler), imports in 0.3 s, and also gives the exact flat index the tests compare to.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import faiss
import numpy as np

from core.embeddings.store import EmbeddingSet

EXACT_MAX_VALUES = 5_000_000
HNSW_M, EF_CONSTRUCTION, EF_SEARCH = 32, 80, 128
INDEX_FILE = "index-hnsw.faiss"
_CACHED: OrderedDict = OrderedDict()     # version folder -> matrix or index, 2 at most
_LOCK = threading.Lock()


def uses_index(rows: int, dim: int) -> bool:
    """Whether a set of ``rows`` vectors of ``dim`` values is searched through the index."""
    return rows * dim > EXACT_MAX_VALUES


def search(es: EmbeddingSet, queries: np.ndarray, k: int,
           exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosine distances), each Q×k', nearest first, for float32 ``queries`` (Q×D,
    normalised); k' = min(k, len(es)). ``exact`` forces a path (None: by size); rows of -1
    (HNSW can find fewer) are dropped by the callers."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    k = min(int(k), len(es))
    if k <= 0:
        return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
    if exact if exact is not None else not uses_index(len(es), es.dim):
        return exact_search(float_matrix(es), q, k)
    index = hnsw_index(es)
    sims, rows = index.search(q, k)
    return rows.astype(np.int64), (1.0 - sims).astype(np.float32)


def exact_search(matrix: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product of ``q`` (Q×D) over ``matrix`` (N×D float32)."""
    sims = q @ matrix.T
    if k < sims.shape[1]:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(sims.shape[1]), (len(q), 1))
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1)
    return rows.astype(np.int64), (1.0 - np.take_along_axis(top, order, axis=1)).astype(
        np.float32)


def hnsw_index(es: EmbeddingSet, build: bool = True):
    """The set's HNSW index: from memory, else its file, else built and saved (``build``
    False: None instead of building)."""
    key = ("hnsw", str(es.folder))
    with _LOCK:
        if key in _CACHED:
            _CACHED.move_to_end(key)
            return _CACHED[key]
    path = es.derived(INDEX_FILE)
    if path.is_file():
        index = faiss.read_index(str(path))
    elif not build:
        return None
    else:
        index = build_hnsw(es.vectors32())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    index.hnsw.efSearch = EF_SEARCH
    _remember(key, index)
    return index


def build_hnsw(vectors: np.ndarray):
    """An HNSW inner-product index over float32 ``vectors`` (row k = id k)."""
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index.hnsw.efSearch = EF_SEARCH
    return index


def float_matrix(es: EmbeddingSet) -> np.ndarray:
    """The set as float32 in memory, kept per process for its two latest sets."""
    key = ("matrix", str(es.folder))
    with _LOCK:
        if key in _CACHED:
            _CACHED.move_to_end(key)
            return _CACHED[key]
    matrix = np.ascontiguousarray(es.vectors32())
    if es.folder is not None:
        _remember(key, matrix)
    return matrix


def _remember(key, value) -> None:
    with _LOCK:
        _CACHED[key] = value
        while len(_CACHED) > 2:
            _CACHED.popitem(last=False)
