"""The one path by which images enter a dataset: ``DatasetWriter``.

Every source (samples, folders, archives, manifests, URLs, SQL, uploads, the
webcam) hands images to a writer, one by one (``add_bytes``) or as a stream of
``SourceItem`` (``add_items``: local files of a large import on worker processes,
the rest on two threads; see ``core.data.import_reading``). Each image is decoded fully and
safely once, its statistics measured (perceptual hash, brightness, sharpness, channel
means), its original bytes stored under ``images/<batch>/`` (a local source file on
the same filesystem is hardlinked there rather than copied) and a thumbnail cached;
on ``commit()`` the writer inserts every row,
class and initial label event in one transaction, refreshes the quality flags,
saves the import report, and fills the decoded-pixel cache from the images it
already holds in memory. A source that is mostly bad still imports its good
images, and every skipped file is listed in the report with its reason: nothing
is dropped silently. A source with no image at all is an error that leaves nothing.

The rows a commit writes, and its ``ImportReport``, are in ``core.data.import_rows``;
split assignment is in ``core.data.splits``.
"""

from __future__ import annotations

import io
import secrets
import shutil
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from core.data.catalog import find_dataset_id, get_dataset_id, validate_dataset_name
from core.data.class_names import checked_label
from core.data.decode import DecodedImage
from core.data.import_reading import SourceItem, prepare_local, read_on_threads
from core.data.import_rows import ImportReport, write_import
from core.data.prepare import BatchTarget, Prepared, Skipped, prepare_bytes, store_image, with_stats
from core.data.quality import dataset_flags
from core.data.splits import DEFAULT_FRACTIONS, assign_splits, check_split
from core.data.tensor_cache import import_cache_size, import_side, load_cache, median_side, prebuild_pixels
from core.errors import ImageLabError
from core.store.workspace import Workspace

# Called as progress(done, total or None, message) while an import runs.
Progress = Callable[[int, "int | None", str], None]
KEEP_BUDGET_BYTES = 512 * 1024 * 1024  # decoded pixels kept in memory for that cache


@dataclass
class _CachePrebuild:
    """A new dataset's cache file being written on its own thread during the insert."""
    pool: ThreadPoolExecutor
    future: Future
    path: Path                         # the temporary file, renamed into place when used


class DatasetWriter:
    """Collect images for one dataset and commit them in one transaction.

    ``append=True`` adds to an existing dataset; otherwise the name must be new.
    Use as a context manager: leaving the block without ``commit()`` (an error)
    removes the files written so far.
    """

    def __init__(self, ws: Workspace, name: str, source: str, *, append: bool = False,
                 seed: int = 0, fractions: dict[str, float] | None = None,
                 class_order: list[str] | None = None, user: str = "",
                 progress: Progress | None = None, build_cache: bool = True):
        validate_dataset_name(name)
        self.ws, self.name, self.source, self.append = ws, name, source, append
        self.seed, self.user = seed, user
        self.fractions = fractions or DEFAULT_FRACTIONS
        self.class_order = list(class_order or [])
        self.progress = progress
        self.build_cache = build_cache
        self.skipped: list[Skipped] = []
        self.notes: list[str] = []
        self._pending: list[Prepared] = []
        self._next_index = 0
        self._keep: dict[str, np.ndarray] = {}
        self._keep_bytes = 0
        self._started = time.perf_counter()
        self._committed = False
        if append:
            get_dataset_id(ws, name)  # raises a clear NotFoundError
        elif find_dataset_id(ws, name) is not None:
            raise ImageLabError(f"a dataset named {name!r} already exists; choose another "
                                "--name, or add to it")
        self._batch_rel = f"images/{name}-{secrets.token_hex(4)}"
        self._batch_dir = ws.root / self._batch_rel
        self._batch_dir.mkdir(parents=True, exist_ok=False)
        self._target = BatchTarget(ws.root, self._batch_rel, ws.thumbs_dir)

    @property
    def count(self) -> int:
        """Images accepted so far (not counting skipped files)."""
        return len(self._pending)

    # -- adding ---------------------------------------------------------------
    def skip(self, original_name: str, reason: str) -> None:
        """List a file the source could not offer (``reason`` is shown in the report)."""
        self.skipped.append(Skipped(original_name, reason))

    def note(self, message: str) -> None:
        """Add a line to the report's notes (e.g. rows imported unlabelled)."""
        self.notes.append(message)

    def add_bytes(self, data: bytes, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> bool:
        """Decode and store one image file's bytes; False (and a report line) if bad.

        Raises ``ImageLabError`` for a split name that is not train, val or test.
        """
        check_split(split)
        label = self._label(original_name, label)
        if label is False:
            return False
        return self._accept(prepare_bytes(self._target, self._take_index(), data,
                                          original_name, label, split))

    def add_items(self, items: Iterable[SourceItem]) -> None:
        """Read, decode and store many files, in order.

        Local files of a large import go to worker processes in chunks (decoding is
        CPU-bound and threads only queue on the GIL); other items (downloads, archive
        members, database rows) are read on two threads, so waiting overlaps.
        Raises ``ImageLabError`` if an item names an unknown split (before any is read).
        """
        local: list[tuple] = []
        other: list[tuple[int, SourceItem]] = []
        for item in items:
            check_split(item.split)
            label = self._label(item.name, item.label)
            if label is False:
                continue
            index = self._take_index()
            if item.path is not None:
                local.append((index, str(item.path), item.name, label, item.split))
            else:
                other.append((index, replace(item, label=label)))
        total = len(local) + len(other)

        def accept(results: list, done: int) -> int:
            return self._accept_all(results, done, total)

        done = prepare_local(self._target, local, accept)
        if other:
            read_on_threads(self._target, other, done, accept)

    def add_array(self, pixels: np.ndarray, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> None:
        """Store a uint8 array (H×W or H×W×3) as a PNG file."""
        check_split(split)
        label = self._label(original_name, label)
        if label is False:
            return
        img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        decoded = DecodedImage(img, "PNG", img.mode, img.width, img.height)
        self._accept(with_stats([store_image(self._target, self._take_index(), buf.getvalue(),
                                             decoded, original_name, label,
                                             split)])[0])

    # -- the work for one item ------------------------------------------------------
    def _label(self, name: str, label: str | None) -> str | None | bool:
        """The item's label (NFC, stripped; None: unlabelled), or False when its class
        name is invalid: the item is then skipped with the reason."""
        label, problem = checked_label(label)
        if problem:
            self.skip(name, problem)
            return False
        return label

    def _take_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1

    def _accept(self, result) -> bool:
        if isinstance(result, Skipped):
            self.skipped.append(result)
            return False
        self._pending.append(result)
        pixels, result.pixels = result.pixels, None
        if pixels is not None and self._keep_bytes + pixels.nbytes <= KEEP_BUDGET_BYTES:
            self._keep[result.sha256] = pixels
            self._keep_bytes += pixels.nbytes
        return True

    def _accept_all(self, results: list, done: int, total: int | None) -> int:
        for result in results:
            self._accept(result)
            done += 1
            if self.progress and (done % 100 == 0 or done == total):
                self.progress(done, total, f"{done} files read, {len(self._pending)} images kept")
        return done

    # -- committing -----------------------------------------------------------
    def commit(self) -> ImportReport:
        """Assign missing splits, insert everything in one transaction, build the cache.

        Returns the ``ImportReport``. Raises ``ImageLabError`` (and removes the files
        written so far) when no image was accepted: an import that finds nothing leaves no
        dataset and no import row behind. Raises ``RuntimeError`` if called twice.
        """
        if self._committed:
            raise RuntimeError("commit() called twice")
        if not self._pending:
            self.abort()
            raise ImageLabError(self._nothing_found())
        self._pending.sort(key=lambda p: p.index)
        splits = assign_splits([p.label for p in self._pending],
                               [p.split for p in self._pending], self.fractions, self.seed)
        labels = sorted({p.label for p in self._pending if p.label is not None}, key=_natural_key)
        order = [c for c in self.class_order if c in labels] + \
                [c for c in labels if c not in self.class_order]
        # A new dataset's flags are computed here from what the writer holds, and its
        # rows inserted with them; adding to a dataset re-flags it all after the insert.
        flags = [p.stats.flags for p in self._pending] if self.append else dataset_flags(
            [p.sha256 for p in self._pending], [p.stats.phash for p in self._pending],
            [p.stats.brightness for p in self._pending], [p.stats.sharpness for p in self._pending])
        now = time.time()
        if self.progress:
            self.progress(len(self._pending), len(self._pending), "saving to the workspace database")
        # a new dataset's cache file is written on a second thread while the rows go in
        prebuilding = self._prebuild_cache()
        try:
            return self._commit_rows(splits, order, flags, now, prebuilding)
        finally:
            if prebuilding is not None:
                prebuilding.pool.shutdown(wait=True)
                prebuilding.path.unlink(missing_ok=True)     # unless it became the cache

    def _prebuild_cache(self) -> _CachePrebuild | None:
        pending = self._pending
        if not self.build_cache or self.append or any(p.sha256 not in self._keep for p in pending):
            return None
        size = import_side(median_side([max(p.width, p.height) for p in pending]))
        channels = 3 if any(p.mode != "L" for p in pending) else 1
        self.ws.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.ws.cache_dir / f".import-{self._batch_rel.rsplit('/', 1)[-1]}.npy.tmp"
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-cache")
        return _CachePrebuild(pool, pool.submit(prebuild_pixels, path,
                                                [p.sha256 for p in pending],
                                                [self._keep[p.sha256] for p in pending],
                                                size, channels), path)

    def _commit_rows(self, splits, order, flags, now,
                     prebuilding: _CachePrebuild | None) -> ImportReport:
        with self.ws.write() as conn:
            report = write_import(conn, name=self.name, source=self.source, user=self.user,
                                  append=self.append, class_order=order, pending=self._pending,
                                  splits=splits, flags=flags, batch_rel=self._batch_rel,
                                  skipped=self.skipped, notes=self.notes, now=now)
        self._committed = True
        if self.build_cache:    # commit() refused an empty import, so there are images
            size = import_cache_size(self.ws, report.dataset_id)
            prebuilt = None
            if prebuilding is not None:
                try:
                    prebuilt = prebuilding.future.result()
                except Exception:  # a derived file: on any failure, build it the ordinary way
                    prebuilt = None
            load_cache(self.ws, self.name, size, decoded=self._keep, progress=self.progress,
                       prebuilt=prebuilt)
            report.cache_size = size
        self._keep = {}
        report.seconds = round(time.perf_counter() - self._started, 3)
        return report

    def _nothing_found(self) -> str:
        message = f"no images found in {self.source}"
        if self.skipped:
            reasons = Counter(s.reason for s in self.skipped)
            top = "; ".join(f"{n} × {r}" for r, n in reasons.most_common(3))
            message += (f": {len(self.skipped)} files skipped ({top}; e.g. "
                        f"{self.skipped[0].path})")
        return message + "; nothing was imported"

    def abort(self) -> None:
        """Remove the files written so far, unless committed (``__exit__`` calls it on errors)."""
        if not self._committed:
            shutil.rmtree(self._batch_dir, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _natural_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name.lower())

