"""Computing a dataset's embeddings, only for images whose content is new.

``compute_embeddings`` reads the dataset's images (id, content hash) and the stored set
for the embedder. When the embedder's stamp is unchanged, a vector is reused for every
image whose content hash the stored set already has (by hash, not by id: a re-imported
copy of an image reuses its vector); only the rest are embedded, from the decoded-pixel
cache at the embedder's size, in batches. Nothing is written when nothing changed.

**Excluded images are embedded too.** Exclusion is a label decision that can be undone at
any time and does not change what an image shows; the map and the duplicate search must
still see them (an excluded near-copy across splits is still worth knowing), and a page can
hide them by filtering on the database's ``excluded`` column.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.data.catalog import get_dataset_id
from core.data.tensor_cache import load_cache
from core.embeddings.embedders import default_embedder, embedder_stamp, load_embedder
from core.embeddings.store import EmbeddingSet, load_embeddings, write_set
from core.errors import ImageLabError
from core.store.workspace import Workspace

Progress = Callable[[int, int], None]
CHUNK = 512          # images embedded between two progress reports


def dataset_rows(ws: Workspace, dataset: str) -> tuple[np.ndarray, list[str]]:
    """(image ids sorted, their content hashes) of every image of ``dataset``."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        rows = conn.execute("SELECT id, sha256 FROM images WHERE dataset_id = ? ORDER BY id",
                            (ds_id,)).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]


def compute_embeddings(ws: Workspace, dataset: str, embedder: str | None = None,
                       progress: Progress | None = None) -> EmbeddingSet:
    """The embeddings of every image of ``dataset`` by ``embedder`` (None: the default),
    computing only what the stored set lacks (see the module docstring).
    ``progress(done, total)`` is called as images are embedded."""
    key = embedder or default_embedder(ws, dataset)
    ids, shas = dataset_rows(ws, dataset)
    if not len(ids):
        raise ImageLabError(f"dataset {dataset!r} has no images to embed")
    stamp = embedder_stamp(ws, dataset, key)
    old = load_embeddings(ws, dataset, key)
    if old is not None and old.stamp != stamp:
        old = None                       # other weights or input size: every vector is new
    known: dict[str, int] = {}
    if old is not None:
        known = {s.decode(): k for k, s in enumerate(old.shas.tolist())}
    reuse = np.array([known.get(s, -1) for s in shas], dtype=np.int64)
    if old is not None and len(old) == len(ids) and np.array_equal(old.image_ids, ids) \
            and (reuse >= 0).all():
        if progress:
            progress(len(ids), len(ids))
        return old
    model = load_embedder(ws, dataset, key)
    todo = np.flatnonzero(reuse < 0)
    new_vectors = _embed_rows(ws, dataset, model, ids, todo, progress, len(ids) - len(todo))
    dim = new_vectors.shape[1] if len(todo) else old.dim
    vectors = np.empty((len(ids), dim), dtype=np.float16)
    kept = np.flatnonzero(reuse >= 0)
    if len(kept):
        vectors[kept] = old.vectors[reuse[kept]]
    if len(todo):
        vectors[todo] = new_vectors
    return write_set(ws, dataset, key, model=model.model, stamp=stamp, image_ids=ids,
                     vectors=vectors, shas=shas)


def _embed_rows(ws: Workspace, dataset: str, model, ids: np.ndarray, todo: np.ndarray,
                progress: Progress | None, done: int) -> np.ndarray:
    """Vectors (float32) for the images ``ids[todo]``, from the cache at the model's size."""
    total = len(ids)
    if progress:
        progress(done, total)
    if not len(todo):
        return np.zeros((0, 0), dtype=np.float32)
    cache = load_cache(ws, dataset, model.size)
    rows = np.searchsorted(cache.image_ids, ids[todo])
    if not np.array_equal(cache.image_ids[rows.clip(0, len(cache.image_ids) - 1)], ids[todo]):
        raise ImageLabError(f"dataset {dataset!r} changed while it was being embedded; "
                            "compute its embeddings again")
    parts = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        parts.append(model.embed_levels(np.asarray(cache.pixels[chunk])))
        if progress:
            progress(done + start + len(chunk), total)
    return np.concatenate(parts)
