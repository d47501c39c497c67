"""The decoded-pixel cache the trainer reads: uint8 N×C×H×W, memory-mapped.

Each image is decoded once per training resolution, squashed to ``size``×``size``
(the whole image is kept; random-resized-crop augmentation does the cropping)
by the preprocessing contract, ``core.data.preprocess.Preprocessing``,
and stored in ``cache/<dataset_id>/<size>/pixels.npy`` with ``image_ids.npy``
beside it. Labels are *not* in the cache — they change — so consumers join
``image_ids`` with the current labels from the database.

The cache is keyed by a fingerprint of (image id, content hash); when images are
added or removed, rows still valid are copied over and only new images decoded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from core.data.catalog import get_dataset_id
from core.data.decode import BadImage, load_image_file
from core.data.preprocess import Preprocessing
from core.errors import ImageLabError
from core.store.workspace import Workspace, atomic_write_text

IMPORT_CACHE_MAX_SIDE = 64   # the cache built at import: min(native size, this)


@dataclass
class TensorCache:
    """One dataset's decoded pixels at one size, as ``load_cache`` returns them.

    ``pixels`` is a uint8 N×C×H×W array (usually a read-only memory map) with
    H = W = ``size``; row k is the image ``image_ids[k]``. ``path`` is the ``pixels.npy`` file.
    Labels are not here: join ``image_ids`` with the database's current labels.
    """
    pixels: np.ndarray      # uint8 (N, C, H, W), usually a read-only memmap
    image_ids: np.ndarray   # int64 (N,)
    size: int
    channels: int
    path: Path

    def __len__(self) -> int:
        return len(self.image_ids)


def dataset_channels(ws: Workspace, dataset_id: int) -> int:
    """The channels a dataset's cache holds: 3 if any image is colour, else 1 (all grayscale)."""
    with ws.db() as conn:
        row = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ? AND mode != 'L'",
                           (dataset_id,)).fetchone()
    return 3 if row[0] else 1


def native_size(ws: Workspace, dataset_id: int) -> int:
    """The median of the images' longer sides: the natural training size."""
    with ws.db() as conn:
        sides = [r[0] for r in conn.execute(
            "SELECT MAX(width, height) FROM images WHERE dataset_id = ?", (dataset_id,))]
    return median_side(sides)


def median_side(sides: list[int]) -> int:
    """The median of the images' longer sides (32 for no images)."""
    return int(np.median(sides)) if sides else 32


def import_cache_size(ws: Workspace, dataset_id: int) -> int:
    """The size of the cache built at import: the native size, at most 64 px."""
    return import_side(native_size(ws, dataset_id))


def import_side(native: int) -> int:
    """The import cache's size for a dataset whose native size is ``native``."""
    return max(4, min(native, IMPORT_CACHE_MAX_SIDE))


def load_cache(ws: Workspace, dataset: str, size: int, *, progress: Callable | None = None,
               decoded: Mapping[str, np.ndarray] | None = None,
               prebuilt: "PrebuiltPixels | None" = None) -> TensorCache:
    """Return the dataset's cache at ``size``, building or refreshing it if needed.

    ``decoded`` maps content hashes to images already decoded by the importer (uint8
    H×W or H×W×3 arrays), which are used instead of decoding their files again.
    ``prebuilt``: a pixel file the importer built while it wrote the rows; it becomes
    the cache if it holds exactly the dataset's images, in id order, at this size.
    """
    if not 4 <= size <= 1024:
        raise ImageLabError(f"image size {size} is out of range (4–1024 pixels)")
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        rows = conn.execute("SELECT id, sha256, path FROM images WHERE dataset_id = ? ORDER BY id",
                            (ds_id,)).fetchall()
    if not rows:
        raise ImageLabError(f"dataset {dataset!r} has no images")
    ids = np.array([r["id"] for r in rows], dtype=np.int64)
    fingerprint = _fingerprint(rows)
    channels = dataset_channels(ws, ds_id)
    folder = ws.dataset_cache_dir(ds_id) / str(size)
    meta = _read_meta(folder)
    if meta and meta.get("fingerprint") == fingerprint and meta.get("channels") == channels:
        return _open(folder, size, channels)
    shas = [r["sha256"] for r in rows]
    if prebuilt is not None and prebuilt.fits(shas, size, channels):
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(prebuilt.path, folder / "pixels.npy")
        np.save(folder / "image_ids.npy", ids)
        atomic_write_text(folder / "shas.json", json.dumps(shas))
    else:
        _build(ws, folder, rows, ids, size, channels, meta, progress, decoded or {})
    atomic_write_text(folder / "meta.json", json.dumps(
        {"fingerprint": fingerprint, "channels": channels, "size": size, "count": len(ids)}))
    return _open(folder, size, channels)


@dataclass
class PrebuiltPixels:
    """A cache file written before its dataset's rows had ids (see ``prebuild_pixels``)."""
    path: Path
    shas: list[str]
    size: int
    channels: int

    def fits(self, shas: list[str], size: int, channels: int) -> bool:
        """True if this file holds exactly ``shas`` (in order) at ``size`` and ``channels``, and
        still exists, so ``load_cache`` can move it into place instead of decoding again.
        """
        return (self.shas == shas and self.size == size and self.channels == channels
                and self.path.exists())


def prebuild_pixels(path: Path, shas: list[str], images: list, size: int,
                    channels: int) -> PrebuiltPixels:
    """Write the cache file for ``images`` (uint8 arrays, in the order their rows will
    get ids) at ``path``: the importer runs this beside its database insert."""
    pre = Preprocessing(size, channels)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                    shape=(len(images), channels, size, size))
    _write_rows(out, (pre.array_from_pixels(img) for img in images))
    out.flush()
    del out
    return PrebuiltPixels(path, list(shas), size, channels)


def _open(folder: Path, size: int, channels: int) -> TensorCache:
    pixels = np.load(folder / "pixels.npy", mmap_mode="r")
    ids = np.load(folder / "image_ids.npy")
    return TensorCache(pixels, ids, size, channels, folder)


def _build(ws, folder: Path, rows, ids: np.ndarray, size: int, channels: int,
           meta: dict | None, progress: Callable | None,
           decoded: Mapping) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    old = None
    if meta and meta.get("channels") == channels and (folder / "pixels.npy").exists():
        try:
            old = _open(folder, size, channels)
            old_shas = json.loads((folder / "shas.json").read_text())
        except (OSError, ValueError):
            old = None
    old_index = {}
    if old is not None:
        old_index = {(int(i), s): k for k, (i, s) in enumerate(zip(old.image_ids, old_shas))}
    tmp = folder / "pixels.npy.tmp"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                    shape=(len(ids), channels, size, size))
    pre = Preprocessing(size, channels)
    shas = [r["sha256"] for r in rows]

    def row_pixels(k: int, image_id: int, sha: str) -> np.ndarray:
        hit = old_index.get((image_id, sha)) if old_index else None
        if hit is not None:
            return old.pixels[hit]
        if sha in decoded:
            return pre.array_from_pixels(decoded[sha])
        return _decode_resized(ws, rows[k]["path"], pre)

    _write_rows(out, (row_pixels(k, i, sha) for k, (i, sha) in enumerate(zip(ids.tolist(), shas))),
                progress, f"decoding images into the {size}px cache")
    out.flush()
    del out
    old = None            # release the old memmap before its file is replaced
    os.replace(tmp, folder / "pixels.npy")
    np.save(folder / "image_ids.npy", ids)
    atomic_write_text(folder / "shas.json", json.dumps(shas))


def _write_rows(out: np.ndarray, arrays, progress: Callable | None = None,
                what: str = "") -> None:
    """Fill ``out`` (N×C×S×S) from an iterable of C×S×S arrays, 1,024 rows per write."""
    total, block = len(out), []
    for k, arr in enumerate(arrays):
        block.append(arr)
        if len(block) == 1024 or k + 1 == total:
            out[k + 1 - len(block):k + 1] = np.stack(block)
            block = []
        if progress and (k + 1) % 1000 == 0:
            progress(k + 1, total, what)


def _decode_resized(ws: Workspace, rel_path: str, pre: Preprocessing) -> np.ndarray:
    try:
        img = load_image_file(ws.resolve(rel_path)).image
    except BadImage as exc:
        raise ImageLabError(f"image {rel_path} in the workspace can no longer be read ({exc}); "
                            "re-import the dataset") from None
    return pre.to_array(img)


def _fingerprint(rows) -> str:
    h = hashlib.sha1()
    for r in rows:
        h.update(f"{r['id']}:{r['sha256']};".encode())
    return h.hexdigest()


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
