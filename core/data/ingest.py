"""The one path by which images enter a dataset: ``DatasetWriter``.

Every source (samples, folders, archives, manifests, URLs, SQL, uploads, the
webcam) hands images to a writer. The writer decodes each one safely, stores the
original bytes under ``images/<batch>/``, caches a thumbnail, and on ``commit()``
inserts every row, class and initial label event in one transaction. A source
that is mostly bad still imports its good images, and every skipped file is
listed in the report with its reason: nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from core.data.catalog import SPLITS, create_dataset, ensure_classes, get_dataset_id, validate_dataset_name
from core.data.decode import BadImage, DecodedImage, decode_image
from core.data.thumbnails import write_thumbnail
from core.errors import ImageLabError
from core.store.workspace import Workspace

Progress = Callable[[int, "int | None", str], None]
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
_EXT = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp",
        "PPM": "ppm"}


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class ImportReport:
    name: str
    dataset_id: int
    added: int
    num_images: int          # images now in the dataset
    classes: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Pending:
    path: str
    original_name: str
    sha256: str
    width: int
    height: int
    mode: str
    format: str
    num_bytes: int
    label: str | None
    split: str | None


class DatasetWriter:
    """Collect images for one dataset and commit them in one transaction.

    ``append=True`` adds to an existing dataset; otherwise the name must be new.
    Use as a context manager: leaving the block without ``commit()`` (an error)
    removes the files written so far.
    """

    def __init__(self, ws: Workspace, name: str, source: str, *, append: bool = False,
                 seed: int = 0, fractions: dict[str, float] | None = None,
                 class_order: list[str] | None = None, user: str = "",
                 progress: Progress | None = None):
        validate_dataset_name(name)
        self.ws, self.name, self.source, self.append = ws, name, source, append
        self.seed, self.user = seed, user
        self.fractions = fractions or DEFAULT_FRACTIONS
        self.class_order = list(class_order or [])
        self.progress = progress
        self.skipped: list[Skipped] = []
        self._pending: list[_Pending] = []
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

    # -- adding ---------------------------------------------------------------
    def skip(self, original_name: str, reason: str) -> None:
        self.skipped.append(Skipped(original_name, reason))

    def add_bytes(self, data: bytes, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> bool:
        """Decode and store one image file's bytes; False (and a report line) if bad."""
        try:
            decoded = decode_image(data)
        except BadImage as exc:
            self.skip(original_name, str(exc))
            return False
        self._store(data, decoded, original_name=original_name, label=label, split=split)
        return True

    def add_array(self, pixels: np.ndarray, *, original_name: str, label: str | None = None,
                  split: str | None = None) -> None:
        """Store a uint8 array (H×W or H×W×3) as a PNG file."""
        img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        decoded = DecodedImage(img, "PNG", img.mode, img.width, img.height)
        self._store(buf.getvalue(), decoded, original_name=original_name, label=label, split=split)

    def _store(self, data: bytes, decoded: DecodedImage, *, original_name: str,
               label: str | None, split: str | None) -> None:
        if split is not None and split not in SPLITS:
            raise ImageLabError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        label = _clean_label(label)
        sha = hashlib.sha256(data).hexdigest()
        ext = _EXT.get(decoded.format, "img")
        index = len(self._pending)
        rel = f"{self._batch_rel}/{index // 1000:04d}/{index % 1000:03d}-{sha[:12]}.{ext}"
        target = self.ws.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
        write_thumbnail(self.ws.thumbs_dir, sha, decoded.image)
        self._pending.append(_Pending(rel, original_name, sha, decoded.width, decoded.height,
                                      decoded.image.mode, decoded.format, len(data), label, split))
        if self.progress and len(self._pending) % 250 == 0:
            self.progress(len(self._pending), None, f"{len(self._pending)} images read")

    # -- committing -----------------------------------------------------------
    def commit(self) -> ImportReport:
        """Assign missing splits, then insert everything in one transaction."""
        if self._committed:
            raise RuntimeError("commit() called twice")
        splits = assign_splits([p.label for p in self._pending],
                               [p.split for p in self._pending], self.fractions, self.seed)
        labels = sorted({p.label for p in self._pending if p.label is not None}, key=_natural_key)
        order = [c for c in self.class_order if c in labels or not self._pending] + \
                [c for c in labels if c not in self.class_order]
        now = time.time()
        with self.ws.write() as conn:
            if self.append:
                ds_id = int(conn.execute("SELECT id FROM datasets WHERE name = ?",
                                         (self.name,)).fetchone()[0])
            else:
                ds_id = create_dataset(conn, self.name, self.source)
            class_ids = ensure_classes(conn, ds_id, order)
            conn.executemany(
                "INSERT INTO images(dataset_id, path, original_name, sha256, width, height, mode, "
                "format, num_bytes, split, class_id, added_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(ds_id, p.path, p.original_name, p.sha256, p.width, p.height, p.mode, p.format,
                  p.num_bytes, split, class_ids.get(p.label) if p.label else None, now)
                 for p, split in zip(self._pending, splits)])
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
            total = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ?",
                                 (ds_id,)).fetchone()[0]
            class_names = [r[0] for r in conn.execute(
                "SELECT name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
                "ORDER BY position, name", (ds_id,))]
        self._committed = True
        if not self._pending:
            shutil.rmtree(self._batch_dir, ignore_errors=True)
        return ImportReport(self.name, ds_id, len(self._pending), int(total), class_names,
                            list(self.skipped), round(time.perf_counter() - self._started, 3))

    def abort(self) -> None:
        if not self._committed:
            shutil.rmtree(self._batch_dir, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


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

