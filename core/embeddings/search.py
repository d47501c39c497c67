""""More like this": the k images of a dataset nearest to an image or to a file.

Both read the stored embeddings (``compute`` makes them; nothing is computed here but the
one vector of an uploaded file) and search them through ``index.search`` (exact numpy for
small sets, HNSW above). Distances are cosine distances (0 = same direction).
``similar_to_file`` decodes the bytes with ``core.data.decode`` (a file that is not an image
we read is an ``ImageLabError``) and embeds them with the same embedder, through the same
preprocessing as the stored images, so a dataset image uploaded as a file finds itself at
distance ~0 and the same neighbours as ``similar_to_image``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from core.data.catalog import get_dataset_id
from core.data.decode import BadImage, decode_image
from core.embeddings.embedder_models import Embedder
from core.embeddings.embedders import embedder_stamp, load_embedder
from core.embeddings.index import search
from core.embeddings.store import EmbeddingSet, load_embeddings
from core.errors import ImageLabError
from core.store.workspace import Workspace

MAX_K = 1000
_EMBEDDERS: OrderedDict = OrderedDict()   # (root, dataset, key, stamp) -> Embedder, 2 at most
_LOCK = threading.Lock()


@dataclass
class Neighbour:
    """One similar image: its id, current label (None: unlabelled) and split, and its cosine
    distance to the query."""
    image_id: int
    label: str | None
    split: str | None
    distance: float

    def to_dict(self) -> dict:
        """The neighbour as a plain dict (JSON-ready)."""
        return asdict(self)


def stored_set(ws: Workspace, dataset: str, embedder: str | None = None) -> EmbeddingSet:
    """The stored embeddings a search reads, or a clear error saying how to compute them."""
    es = load_embeddings(ws, dataset, embedder)
    if es is None or not len(es):
        which = f" by {embedder}" if embedder else ""
        raise ImageLabError(f"dataset {dataset!r} has no embeddings{which} yet: compute them "
                            f"first (python -m core embed {dataset}, or Compute embeddings on "
                            "the Explore page)")
    return es


def similar_to_image(ws: Workspace, dataset: str, image_id: int, k: int = 20,
                     embedder: str | None = None) -> list[Neighbour]:
    """The ``k`` images of ``dataset`` nearest to its image ``image_id`` (itself left out),
    nearest first."""
    k = _check_k(k)
    es = stored_set(ws, dataset, embedder)
    row = es.row_of(int(image_id))
    if row is None:
        raise ImageLabError(_missing_image_message(ws, dataset, int(image_id)))
    rows, dist = search(es, es.vectors32([row]), k + 1)
    keep = (rows[0] >= 0) & (rows[0] != row)
    return _neighbours(ws, es, rows[0][keep][:k], dist[0][keep][:k])


def similar_to_file(ws: Workspace, dataset: str, image_bytes: bytes, k: int = 20,
                    embedder: str | None = None) -> list[Neighbour]:
    """The ``k`` images of ``dataset`` nearest to the image file ``image_bytes``, nearest
    first (a copy of a dataset image comes first, at distance ~0)."""
    k = _check_k(k)
    try:
        image = decode_image(bytes(image_bytes)).image
    except BadImage as exc:
        raise ImageLabError(f"the file is not an image ImageLab can read: {exc}") from None
    es = stored_set(ws, dataset, embedder)
    vector = query_embedder(ws, dataset, es).embed_images([image])
    rows, dist = search(es, vector, k)
    keep = rows[0] >= 0
    return _neighbours(ws, es, rows[0][keep], dist[0][keep])


def query_embedder(ws: Workspace, dataset: str, es: EmbeddingSet) -> Embedder:
    """The embedder that made ``es``, loaded once per process, for embedding new images;
    refused when it no longer makes the stored vectors (new weights, another input size)."""
    stamp = embedder_stamp(ws, dataset, es.embedder)
    if stamp != es.stamp:
        raise ImageLabError(f"the {es.embedder} embeddings of {dataset!r} are out of date (the "
                            "model or the images' size changed): compute them again")
    key = (str(ws.root), dataset, es.embedder, stamp)
    with _LOCK:
        if key in _EMBEDDERS:
            _EMBEDDERS.move_to_end(key)
            return _EMBEDDERS[key]
    model = load_embedder(ws, dataset, es.embedder)
    with _LOCK:
        _EMBEDDERS[key] = model
        while len(_EMBEDDERS) > 2:
            _EMBEDDERS.popitem(last=False)
    return model


def image_facts(ws: Workspace, image_ids) -> dict[int, tuple[str | None, str | None]]:
    """image id -> (current label or None, split) for ``image_ids``."""
    ids = [int(i) for i in image_ids]
    out: dict[int, tuple[str | None, str | None]] = {}
    with ws.db() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(f"SELECT i.id, c.name, i.split FROM images i LEFT JOIN "
                                  f"classes c ON c.id = i.class_id WHERE i.id IN ({marks})",
                                  chunk):
                out[int(r[0])] = (r[1], r[2])
    return out


def _neighbours(ws: Workspace, es: EmbeddingSet, rows: np.ndarray,
                dist: np.ndarray) -> list[Neighbour]:
    ids = es.image_ids[rows]
    facts = image_facts(ws, ids)
    return [Neighbour(int(i), *facts.get(int(i), (None, None)), float(max(d, 0.0)))
            for i, d in zip(ids, dist) if int(i) in facts]     # deleted images drop out


def _check_k(k) -> int:
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise ImageLabError(f"k must be a whole number, not {k!r}") from None
    if not 1 <= k <= MAX_K:
        raise ImageLabError(f"k must be between 1 and {MAX_K}, not {k}")
    return k


def _missing_image_message(ws: Workspace, dataset: str, image_id: int) -> str:
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        there = conn.execute("SELECT 1 FROM images WHERE id = ? AND dataset_id = ?",
                             (image_id, ds_id)).fetchone()
    if there is None:
        return f"dataset {dataset!r} has no image {image_id}"
    return (f"image {image_id} was added after the embeddings of {dataset!r} were computed: "
            "compute them again (only new images are embedded)")
