"""The one path by which images enter a dataset: ``DatasetWriter``.

Every source (samples, folders, archives, manifests, URLs, SQL, uploads, the
webcam) hands images to a writer, one by one (``add_bytes``) or as a stream of
``SourceItem`` (``add_items``: local files of a large import on worker processes,
the rest on two threads; see ``core.data.prepare``). Each image is decoded fully and
safely once, its statistics measured (perceptual hash, brightness, sharpness, channel
means), its original bytes stored under ``images/<batch>/`` (a local source file on
the same filesystem is hardlinked there rather than copied) and a thumbnail cached;
on ``commit()`` the writer inserts every row,
class and initial label event in one transaction, refreshes the quality flags,
saves the import report, and fills the decoded-pixel cache from the images it
already holds in memory. A source that is mostly bad still imports its good
images, and every skipped file is listed in the report with its reason: nothing
is dropped silently.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from core.data.catalog import SPLITS, create_dataset, ensure_classes, get_dataset_id, validate_dataset_name
from core.data.decode import DecodedImage
from core.data.prepare import (
    BatchTarget,
    Prepared,
    Skipped,
    discard_pool,
    prepare_bytes,
    prepare_files,
    prepare_item,
    store_image,
    with_stats,
    worker_count,
    worker_pool,
)
from core.data.quality import dataset_flags, exact_copies, refresh_flags
from core.data.tensor_cache import import_cache_size, import_side, load_cache, median_side, prebuild_pixels
from core.errors import ImageLabError
from core.store.workspace import Workspace

Progress = Callable[[int, "int | None", str], None]
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
KEEP_BUDGET_BYTES = 512 * 1024 * 1024  # decoded pixels kept in memory for that cache
THREADS = 2                         # for sources whose reads wait (URLs, archives)
PROCESS_MIN_FILES = 256             # local imports at least this large use worker processes


@dataclass
class SourceItem:
    """One file offered by a source: ``read()`` returns its bytes (or raises OSError)."""
    name: str                      # where it came from, for the report
    read: Callable[[], bytes]
    label: str | None = None
    split: str | None = None
    path: Path | None = None       # a local file, read with ``files.read_file`` (``read`` is
                                   # not called then: a worker process reads it) and hardlinked


@dataclass
class ImportReport:
    name: str
    dataset_id: int
    added: int
    num_images: int          # images now in the dataset
    classes: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    source: str = ""
    notes: list[str] = field(default_factory=list)          # e.g. empty labels imported unlabelled
    duplicates: list[dict] = field(default_factory=list)    # exact copies (by content hash)
    label_conflicts: list[dict] = field(default_factory=list)  # same image under two labels
    leakage: list[dict] = field(default_factory=list)       # same image in two splits
    cache_size: int | None = None                           # side of the cache built at import

    def to_dict(self) -> dict:
        return asdict(self)


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
        else:
            with ws.db() as conn:
                if conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
                    raise ImageLabError(f"a dataset named {name!r} already exists; choose another "
                                        "--name, or add to it")
        self._batch_rel = f"images/{name}-{secrets.token_hex(4)}"
        self._batch_dir = ws.root / self._batch_rel
        self._batch_dir.mkdir(parents=True, exist_ok=False)
        self._target = BatchTarget(ws.root, self._batch_rel, ws.thumbs_dir)

    @property
    def count(self) -> int:
        return len(self._pending)

    # -- adding ---------------------------------------------------------------
    def skip(self, original_name: str, reason: str) -> None:
        self.skipped.append(Skipped(original_name, reason))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def add_bytes(self, data: bytes, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> bool:
        """Decode and store one image file's bytes; False (and a report line) if bad."""
        _check_split(split)
        return self._accept(prepare_bytes(self._target, self._take_index(), data,
                                          original_name, _clean_label(label), split))

    def add_items(self, items: Iterable[SourceItem]) -> None:
        """Read, decode and store many files, in order.

        Local files of a large import go to worker processes in chunks (decoding is
        CPU-bound and threads only queue on the GIL); other items (downloads, archive
        members, database rows) are read on two threads, so waiting overlaps.
        """
        local: list[tuple] = []
        other: list[tuple[int, SourceItem]] = []
        for item in items:
            _check_split(item.split)
            index = self._take_index()
            if item.path is not None:
                local.append((index, str(item.path), item.name, _clean_label(item.label),
                              item.split))
            else:
                other.append((index, item))
        total = len(local) + len(other)
        done = 0
        if len(local) >= PROCESS_MIN_FILES and worker_count() > 1:
            done = self._prepare_in_workers(local, total)
        elif local:
            for chunk in _chunks(local, 256):
                done = self._accept_all(prepare_files(self._target, chunk), done, total)
        if other:
            self._read_on_threads(other, done, total)

    def _prepare_in_workers(self, tasks: list[tuple], total: int) -> int:
        """Chunks of local files on the worker pool; a chunk whose worker died (killed,
        out of memory) or that could not be sent is done in this process instead."""
        done = 0
        size = max(32, min(256, len(tasks) // (worker_count() * 4)))
        pool = worker_pool()
        pairs: list[tuple[list, Future | None]] = []
        for chunk in _chunks(tasks, size):
            future = None
            if pool is not None:
                try:
                    future = pool.submit(prepare_files, self._target, chunk)
                except (BrokenProcessPool, RuntimeError, OSError):
                    discard_pool()
                    pool = None
            pairs.append((chunk, future))
        try:
            for chunk, future in pairs:
                results = None
                if future is not None:
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        discard_pool()
                if results is None:
                    results = prepare_files(self._target, chunk)
                done = self._accept_all(results, done, total)
        except BaseException:
            # stopped (an error, or the page's script was stopped): let no worker write
            # into the batch folder after the caller removes it
            running = [f for _, f in pairs if f is not None and not f.cancel()]
            wait(running, timeout=120)
            raise
        return done

    def _read_on_threads(self, work: list[tuple[int, SourceItem]], done: int,
                         total: int) -> None:
        window = THREADS * 8
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="import") as pool:
            futures: deque = deque()
            for index, item in work:
                futures.append(pool.submit(prepare_item, self._target, index, item.name,
                                           item.read, _clean_label(item.label), item.split))
                while len(futures) >= window:
                    done = self._accept_all([futures.popleft().result()], done, total)
            while futures:
                done = self._accept_all([futures.popleft().result()], done, total)

    def add_array(self, pixels: np.ndarray, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> None:
        """Store a uint8 array (H×W or H×W×3) as a PNG file."""
        _check_split(split)
        img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        decoded = DecodedImage(img, "PNG", img.mode, img.width, img.height)
        self._accept(with_stats([store_image(self._target, self._take_index(), buf.getvalue(),
                                             decoded, original_name, _clean_label(label),
                                             split)])[0])

    # -- the work for one item ------------------------------------------------------
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
        """Assign missing splits, then insert everything in one transaction."""
        if self._committed:
            raise RuntimeError("commit() called twice")
        self._pending.sort(key=lambda p: p.index)
        splits = assign_splits([p.label for p in self._pending],
                               [p.split for p in self._pending], self.fractions, self.seed)
        labels = sorted({p.label for p in self._pending if p.label is not None}, key=_natural_key)
        order = [c for c in self.class_order if c in labels or not self._pending] + \
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
        if (not self.build_cache or self.append or not pending
                or any(p.sha256 not in self._keep for p in pending)):
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
            if self.append:
                ds_id = int(conn.execute("SELECT id FROM datasets WHERE name = ?",
                                         (self.name,)).fetchone()[0])
            else:
                ds_id = create_dataset(conn, self.name, self.source)
            class_ids = ensure_classes(conn, ds_id, order)
            conn.executemany(
                "INSERT INTO images(dataset_id, path, original_name, sha256, width, height, mode, "
                "format, num_bytes, split, class_id, added_at, phash, brightness, sharpness, "
                "mean_r, mean_g, mean_b, sq_r, sq_g, sq_b, flags) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(ds_id, p.path, p.original_name, p.sha256, p.width, p.height, p.mode, p.format,
                  p.num_bytes, split, class_ids.get(p.label) if p.label else None, now,
                  p.stats.phash, p.stats.brightness, p.stats.sharpness, *p.stats.means,
                  *p.stats.squares, flag)
                 for p, split, flag in zip(self._pending, splits, flags)])
            labelled = [p.path for p in self._pending if p.label]
            if labelled:
                cur = conn.execute(
                    "INSERT INTO actions(dataset_id, kind, description, user, created_at) "
                    "VALUES (?, 'import', ?, ?, ?)",
                    (ds_id, f"import of {len(self._pending)} images from {self.source}",
                     self.user, now))
                action_id = cur.lastrowid
                conn.execute(
                    "INSERT INTO label_events(action_id, image_id, old_class_id, new_class_id, "
                    "created_at) SELECT ?, id, NULL, class_id, ? FROM images "
                    "WHERE dataset_id = ? AND path LIKE ? AND class_id IS NOT NULL ORDER BY id",
                    (action_id, now, ds_id, self._batch_rel + "/%"))
            if self.append:
                refresh_flags(conn, ds_id)
            duplicates, conflicts, leakage = exact_copies(conn, ds_id)
            total = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ?",
                                 (ds_id,)).fetchone()[0]
            class_names = [r[0] for r in conn.execute(
                "SELECT name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
                "ORDER BY position, name", (ds_id,))]
            report = ImportReport(self.name, ds_id, len(self._pending), int(total), class_names,
                                  list(self.skipped), source=self.source, notes=list(self.notes))
            conn.execute("INSERT INTO import_reports(dataset_id, source, added, report_json, "
                         "created_at) VALUES (?, ?, ?, ?, ?)",
                         (ds_id, self.source, report.added,
                          json.dumps({"skipped": [asdict(s) for s in self.skipped],
                                      "notes": self.notes}), now))
        self._committed = True
        if not self._pending:
            shutil.rmtree(self._batch_dir, ignore_errors=True)
        if self.build_cache and total:
            size = import_cache_size(self.ws, ds_id)
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
        report.duplicates = duplicates[:50]
        report.label_conflicts = conflicts[:50]
        report.leakage = leakage[:50]
        report.seconds = round(time.perf_counter() - self._started, 3)
        return report

    def abort(self) -> None:
        if not self._committed:
            shutil.rmtree(self._batch_dir, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ImageLabError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


def assign_splits(labels: list[str | None], given: list[str | None],
                  fractions: dict[str, float], seed: int) -> list[str]:
    """Seeded, stratified split for rows without one; given splits are kept.

    Each class (and the unlabelled group) is shuffled with the seed and cut by
    ``fractions``; a class of 3 or more images gets at least one val and one
    test image, so every split sees every class.
    """
    out = list(given)
    groups: dict[str, list[int]] = {}
    for i, (label, split) in enumerate(zip(labels, given)):
        if split is None:
            groups.setdefault("" if label is None else "#" + label, []).append(i)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n = len(idx)
        n_val = int(round(n * fractions.get("val", 0.0)))
        n_test = int(round(n * fractions.get("test", 0.0)))
        if n >= 3:
            n_val = max(n_val, 1 if fractions.get("val", 0) > 0 else 0)
            n_test = max(n_test, 1 if fractions.get("test", 0) > 0 else 0)
        for j, i in enumerate(idx):
            out[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    return out  # type: ignore[return-value]


def _clean_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = str(label).strip()
    return label or None


def _natural_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name.lower())

