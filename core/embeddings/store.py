"""Stored embeddings: one memory-mapped float16 matrix per dataset and embedder.

Layout, under the workspace::

    embeddings/<dataset id>/<embedder folder>/current.json     which version is current
    embeddings/<dataset id>/<embedder folder>/<version>/
        vectors.f16   float16 N×D, rows L2-normalised, row k = image ids.npy[k]
        ids.npy       int64 image ids, sorted
        shas.npy      the content hash (sha256) each row was computed from
        meta.json     dataset, embedder key, model (in words), stamp, dim, count, time
        pca.npy, umap.npy, index.faiss   derived files (the map, the search index)

The embedder key's ``:`` becomes ``@`` in the folder name (``run@<id>``). A version folder
is written whole under a temporary name, renamed, and only then named by ``current.json``
(written atomically), so a reader never sees a half-written set; older versions are then
deleted (a reader that still maps one keeps its pages: POSIX unlink). Derived files live in
the version folder, so they can never describe other vectors than the ones beside them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.data.catalog import get_dataset_id
from core.errors import ImageLabError
from core.store.workspace import Workspace, atomic_write_text

EMBEDDINGS_DIR = "embeddings"
CURRENT = "current.json"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?")


@dataclass(frozen=True, eq=False)
class EmbeddingSet:
    """One dataset's embeddings by one embedder, as ``load_embeddings`` returns them.

    ``vectors`` is a read-only float16 memory map (N×D, rows L2-normalised, so a dot product
    is the cosine similarity); row k belongs to ``image_ids[k]`` (int64, sorted). ``model``
    says in words what computed them; ``computed_at`` is an ISO time (UTC). ``folder`` is
    the version folder (derived files such as the map live there), ``shas`` the content hash
    of each row and ``stamp`` what identifies the embedder's weights and input size.
    """
    dataset: str
    embedder: str
    model: str
    image_ids: np.ndarray
    vectors: np.ndarray
    computed_at: str
    folder: Path | None = None
    shas: np.ndarray | None = None
    stamp: str = ""

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def dim(self) -> int:
        """The number of values per vector."""
        return int(self.vectors.shape[1])

    def row_of(self, image_id: int) -> int | None:
        """The row of ``image_id``, or None when the set has no vector for it."""
        k = int(np.searchsorted(self.image_ids, image_id))
        return k if k < len(self.image_ids) and self.image_ids[k] == image_id else None

    def rows_of(self, image_ids) -> np.ndarray:
        """The rows of many image ids at once (int64; -1 where the set has no vector)."""
        ids = np.asarray(image_ids, dtype=np.int64)
        k = np.searchsorted(self.image_ids, ids).clip(0, max(len(self.image_ids) - 1, 0))
        found = len(self.image_ids) > 0
        ok = (self.image_ids[k] == ids) if found else np.zeros(len(ids), bool)
        return np.where(ok, k, -1)

    def vectors32(self, rows=None) -> np.ndarray:
        """The vectors (all, or ``rows``: indices or a boolean mask) as float32 in memory."""
        src = self.vectors if rows is None else self.vectors[rows]
        return np.asarray(src, dtype=np.float32)

    def derived(self, name: str) -> Path:
        """The path of a derived file (``pca.npy``, ``umap.npy``, ``index.faiss``) of this set."""
        if self.folder is None:
            raise ImageLabError("these embeddings are not stored in the workspace")
        return self.folder / name


def check_key(key: str) -> str:
    """``key`` if it is an embedder key's shape (``pixels``, ``run:ID``, ``ARCH:imagenet``)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ImageLabError(f"{key!r} is not an embedder: use pixels, run:RUN_ID or "
                            "efficientnet_lite0:imagenet")
    return key


def dataset_dir(ws: Workspace, dataset_id: int) -> Path:
    """The folder of one dataset's embeddings (and of its embedding job's status)."""
    return ws.root / EMBEDDINGS_DIR / str(int(dataset_id))


def set_dir(ws: Workspace, dataset_id: int, key: str) -> Path:
    """The folder of one embedder's vectors for one dataset (holds ``current.json``)."""
    return dataset_dir(ws, dataset_id) / check_key(key).replace(":", "@")


def write_set(ws: Workspace, dataset: str, key: str, *, model: str, stamp: str,
              image_ids: np.ndarray, vectors: np.ndarray, shas: list[str]) -> EmbeddingSet:
    """Store a complete set atomically as the current one for (dataset, key) and return it.

    ``vectors`` (N×D, any float type) must already be L2-normalised, rows in the order of
    ``image_ids`` (sorted)."""
    ids = np.asarray(image_ids, dtype=np.int64)
    if len(ids) != len(vectors) or len(ids) != len(shas):
        raise ValueError("image ids, vectors and hashes differ in length")
    if len(ids) > 1 and np.any(np.diff(ids) <= 0):
        raise ValueError("image ids must be sorted and unique")
    home = set_dir(ws, get_dataset_id(ws, dataset), key)
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        dim = int(vectors.shape[1]) if len(vectors) else 0
        out = np.memmap(tmp / "vectors.f16", dtype=np.float16, mode="w+",
                        shape=(max(len(ids), 1), max(dim, 1)))
        if len(ids):
            out[:] = np.asarray(vectors, dtype=np.float16)
        out.flush()
        del out
        np.save(tmp / "ids.npy", ids)
        np.save(tmp / "shas.npy", np.array(shas, dtype="S64"))
        computed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        meta = {"dataset": dataset, "embedder": key, "model": model, "stamp": stamp,
                "dim": dim, "count": len(ids), "computed_at": computed_at}
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1))
        _fsync_dir(tmp)
        version = f"v{time.time_ns()}"
        os.replace(tmp, home / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(home / CURRENT, json.dumps({"version": version}))
    for old in home.iterdir():
        if old.is_dir() and old.name != version:
            shutil.rmtree(old, ignore_errors=True)
    return _open(home / version, dataset)


def load_embeddings(ws: Workspace, dataset: str, embedder: str | None = None
                    ) -> EmbeddingSet | None:
    """The stored embeddings of ``dataset`` by ``embedder`` (None: the most recently
    computed of its embedders), or None when there are none."""
    ds_id = get_dataset_id(ws, dataset)
    if embedder is None:
        sets = list_embeddings(ws, dataset)
        if not sets:
            return None
        embedder = sets[0]["embedder"]
    home = set_dir(ws, ds_id, embedder)
    for _ in range(3):          # a writer may replace the version between two reads
        folder = _current_folder(home)
        if folder is None:
            return None
        try:
            return _open(folder, dataset)
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    return None


def list_embeddings(ws: Workspace, dataset: str) -> list[dict]:
    """Every stored set of ``dataset``, newest first: ``{embedder, model, count, dim,
    computed_at, has_umap}``."""
    root = dataset_dir(ws, get_dataset_id(ws, dataset))
    out = []
    for home in sorted(root.iterdir()) if root.is_dir() else []:
        folder = _current_folder(home) if home.is_dir() else None
        meta = _read_meta(folder) if folder else None
        if meta is None:
            continue
        out.append({"embedder": meta["embedder"], "model": meta["model"],
                    "count": meta["count"], "dim": meta["dim"],
                    "computed_at": meta["computed_at"],
                    "has_umap": (folder / "umap.npy").is_file()})
    out.sort(key=lambda m: m["computed_at"], reverse=True)
    return out


def _current_folder(home: Path) -> Path | None:
    try:
        version = json.loads((home / CURRENT).read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = home / str(version)
    return folder if folder.is_dir() else None


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _open(folder: Path, dataset: str) -> EmbeddingSet:
    meta = _read_meta(folder)
    if meta is None:
        raise OSError(f"{folder} has no meta.json")
    ids = np.load(folder / "ids.npy")
    count, dim = int(meta["count"]), int(meta["dim"])
    vectors = np.memmap(folder / "vectors.f16", dtype=np.float16, mode="r",
                        shape=(max(count, 1), max(dim, 1)))[:count]
    return EmbeddingSet(dataset, meta["embedder"], meta["model"], ids, vectors,
                        meta["computed_at"], folder, np.load(folder / "shas.npy"),
                        meta.get("stamp", ""))


def _fsync_dir(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
