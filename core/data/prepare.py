"""The per-image work of an import, shared by the importing process and its workers.

``store_image`` takes one decoded image and does everything that needs no database:
store (or hardlink) the original under the import's batch folder, cache a thumbnail,
and keep the small pixel array that statistics and the decoded-pixel cache are made
from. ``prepare_files`` does that for a chunk of local files, then measures the whole
chunk's statistics at once (``batch_image_stats``). It runs in worker processes
(``worker_pool``) for large local imports: decoding is CPU-bound Python-driven work,
and threads only queue on the GIL.

Workers start from a ``forkserver`` that preloads this module (warmed up), never by forking the
caller: the dashboard's server process has many threads, and a fork copies their held
locks. The pool is made once per process and reused by later imports.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.decode import BadImage, DecodedImage, decode_image
from core.data.files import read_file
from core.data.image_stats import ImageStats, batch_image_stats, stats_pixels
from core.data.tensor_cache import IMPORT_CACHE_MAX_SIDE
from core.data.thumbnails import write_thumbnail
from core.errors import ImageLabError

KEEP_MAX_SIDE = IMPORT_CACHE_MAX_SIDE   # images up to this side keep pixels for the import's cache
_EXT = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp",
        "PPM": "ppm"}


@dataclass(frozen=True)
class BatchTarget:
    """Where an import writes: the workspace root, its batch folder, the thumbnails."""
    root: Path
    batch_rel: str
    thumbs_dir: Path


@dataclass
class Skipped:
    """A file an import did not take, and why (``reason`` is shown in the import report)."""
    path: str
    reason: str


@dataclass
class Prepared:
    """One stored image, ready for its database row."""
    index: int
    path: str                 # relative to the workspace root
    original_name: str
    sha256: str
    width: int
    height: int
    mode: str
    format: str
    num_bytes: int
    label: str | None
    split: str | None
    stats: ImageStats | None = None
    pixels: np.ndarray | None = None   # H×W or H×W×3 uint8, for images up to KEEP_MAX_SIDE

    def __reduce__(self):
        # plain tuples cross the process boundary at a third of a dataclass's pickle cost
        s = self.stats
        stats = None if s is None else (s.phash, s.brightness, s.sharpness, s.means, s.squares)
        return _rebuild, ((self.index, self.path, self.original_name, self.sha256, self.width,
                           self.height, self.mode, self.format, self.num_bytes, self.label,
                           self.split), stats, self.pixels)


def _rebuild(fields: tuple, stats: tuple | None, pixels) -> "Prepared":
    return Prepared(*fields, stats=None if stats is None else ImageStats(*stats), pixels=pixels)


def store_image(target: BatchTarget, index: int, data: bytes, decoded: DecodedImage,
                original_name: str, label: str | None, split: str | None,
                source: tuple | None = None) -> tuple[Prepared, np.ndarray]:
    """Store one decoded image; returns it and the pixels its statistics are taken on.

    Paths are plain strings here: this runs once per image, and pathlib's parsing
    cost more than the file system calls themselves."""
    sha = hashlib.sha256(data).hexdigest()
    ext = _EXT.get(decoded.format, "img")
    folder = f"{target.batch_rel}/{index // 1000:04d}"
    rel = f"{folder}/{index % 1000:03d}-{sha[:12]}.{ext}"
    root = str(target.root)
    path = f"{root}/{rel}"
    _store_file(path, f"{root}/{folder}", data, source)
    img = decoded.image
    write_thumbnail(target.thumbs_dir, sha, img, decoded.plain)
    pixels = stats_pixels(img)
    keep = pixels if max(img.size) <= KEEP_MAX_SIDE else None
    return Prepared(index, rel, original_name, sha, decoded.width, decoded.height, img.mode,
                    decoded.format, len(data), label, split, pixels=keep), pixels


_made_dirs: set[str] = set()     # folders this process has made (saves a syscall per file)


def _store_file(path: str, folder: str, data: bytes, source: tuple | None) -> None:
    """Hardlink the unchanged source file at ``path``, or write ``data`` there."""
    for attempt in (0, 1):
        if folder not in _made_dirs:
            os.makedirs(folder, exist_ok=True)
            if len(_made_dirs) > 10_000:
                _made_dirs.clear()
            _made_dirs.add(folder)
        try:
            if source is None or not link_unchanged(*source, len(data), path):
                with open(path, "xb") as fh:  # a new file: never write through a link
                    fh.write(data)
            return
        except FileNotFoundError:
            _made_dirs.discard(folder)      # removed meanwhile: make it again, once
            if attempt:
                raise
        except FileExistsError:
            # left by a worker that died mid-chunk (the chunk is being redone): the batch
            # folder is this import's own, so the stale entry goes
            if attempt:
                raise
            os.unlink(path)


def prepare_bytes(target: BatchTarget, index: int, data: bytes, original_name: str,
                  label: str | None, split: str | None):
    """Decode, store and measure one image: a ``Prepared`` or a ``Skipped``."""
    return with_stats([_decode_and_store(target, index, data, original_name, label, split)])[0]


def prepare_item(target: BatchTarget, index: int, name: str, read, label: str | None,
                 split: str | None):
    """Read (``read()`` → bytes), decode, store and measure one item of a source."""
    data = _read(name, read)
    return data if isinstance(data, Skipped) else \
        prepare_bytes(target, index, data, name, label, split)


def prepare_files(target: BatchTarget, tasks: list[tuple]) -> list:
    """Worker entry: (index, path, name, label, split) per local file → ``Prepared`` or
    ``Skipped`` per file, in order, the chunk's statistics measured together."""
    results: list = []
    for index, path, name, label, split in tasks:
        got = _read(name, lambda p=path: (file_state(p), read_file(p)))
        if isinstance(got, Skipped):
            results.append(got)
            continue
        state, data = got
        results.append(_decode_and_store(target, index, data, name, label, split,
                                         (path, state)))
    return with_stats(results)


def with_stats(results: list) -> list:
    """``Skipped`` entries as they are, each stored ``(Prepared, pixels)`` as its
    ``Prepared`` with statistics, measured together (``batch_image_stats``)."""
    stored = [r for r in results if not isinstance(r, Skipped)]
    for (prepared, _), stats in zip(stored, batch_image_stats([px for _, px in stored])):
        prepared.stats = stats
    return [r if isinstance(r, Skipped) else r[0] for r in results]


def _read(name: str, read):
    try:
        return read()
    except OSError as exc:
        return Skipped(name, f"cannot read file: {exc.strerror or exc}")
    except ImageLabError as exc:
        return Skipped(name, str(exc))


def _decode_and_store(target: BatchTarget, index: int, data: bytes, name: str,
                      label: str | None, split: str | None, source: tuple | None = None):
    try:
        decoded = decode_image(data)
    except BadImage as exc:
        return Skipped(name, str(exc))
    return store_image(target, index, data, decoded, name, label, split, source)


def file_state(path) -> tuple:
    """What identifies a file's current content: device, inode, size, modification time."""
    st = os.lstat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def link_unchanged(path, state: tuple, size: int, target) -> bool:
    """Hardlink ``path`` at ``target`` if it is still the file that was read (same inode,
    size and modification time as before the read, and ``size`` bytes); else leave no
    file at ``target`` and return False, for the caller to write the bytes it holds."""
    if state[2] != size:
        return False
    try:
        os.link(path, target, follow_symlinks=False)
    except OSError:
        return False  # another filesystem, or links not allowed: copy instead
    if file_state(target) == state:
        return True
    os.unlink(target)  # changed since it was read: the caller writes what it read
    return False


# -- the worker pool ----------------------------------------------------------------
def _warm_up() -> None:
    """Load the image plugins and numpy's kernels once, in the forkserver (its preload,
    ``core.data.prepare_preload``, calls this), so every worker forked from it starts warm."""
    from PIL import Image
    Image.init()
    batch_image_stats([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker_count() -> int:
    """Processes for a large local import: one per core (at most 8), or
    ``$IMAGELAB_IMPORT_WORKERS``; 1 means in this process."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    raw = os.environ.get("IMAGELAB_IMPORT_WORKERS", "").strip()
    if raw and not (raw.isdigit() and int(raw) >= 1):
        raise ImageLabError(f"IMAGELAB_IMPORT_WORKERS={raw!r}: give a whole number of worker "
                            "processes, 1 or more (1 imports in this process)")
    wanted = int(raw) if raw else None
    if wanted is None and not _main_is_importable():
        return 1
    return max(1, min(8, wanted or cores))


def _main_is_importable() -> bool:
    """A new worker process re-imports the caller's ``__main__`` (multiprocessing's
    rule). That is harmless for ``python -m …`` (``core``, ``streamlit``, ``pytest``)
    and for interactive sessions, but a plain script without an
    ``if __name__ == "__main__":`` guard would run again in every worker, so such
    callers import in-process unless ``IMAGELAB_IMPORT_WORKERS`` says otherwise."""
    import sys
    main = sys.modules.get("__main__")
    return (getattr(main, "__spec__", None) is not None
            or getattr(main, "__file__", None) is None)


def worker_pool() -> ProcessPoolExecutor | None:
    """The process's import pool (made on first use), or None where processes cannot
    be started (then the import runs in-process)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["core.data.prepare_preload"])
                _pool = ProcessPoolExecutor(max_workers=worker_count(), mp_context=ctx)
            except (OSError, ValueError, RuntimeError):
                return None
        return _pool


def discard_pool() -> None:
    """Forget a pool whose workers died (the next import makes a new one)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
