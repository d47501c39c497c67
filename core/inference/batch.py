"""Batch prediction: files, folders and zips of images in, rows of predictions out.

Paths on this machine (``predict_paths``) and uploaded bytes (``predict_uploads``, never
written to disk) take the same route. Zips are read member by member in memory (never extracted), with caps on the
member count, each member's size and the total, so a hostile archive cannot
write anywhere or exhaust the disk. Unreadable images become rows with an
``error`` and no prediction: nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from core.data.decode import IMAGE_EXTENSIONS, MAX_FILE_BYTES, BadImage, decode_image
from core.data.files import read_file
from core.errors import ImageLabError
from core.inference.predictor import LoadedModel
from core.labels.io import csv_cell

MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 4 * 1024 ** 3


def iter_image_bytes(paths: list[str | Path]) -> Iterator[tuple[str, bytes | None, str]]:
    """Yield (name, bytes or None, error) for every image under ``paths``."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            yield str(path), None, "no such file or folder"
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
                if not f.is_dir():
                    yield from _read_file(f)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from _read_zip(path, path.name)
        else:
            yield from _read_file(path)


def _read_file(path: Path) -> Iterator[tuple[str, bytes | None, str]]:
    try:
        # Refuses a device, FIFO or socket (/dev/zero, a pipe named like an image: reading
        # one may never end) before opening it and again on the open descriptor.
        data = read_file(path)
    except ImageLabError as exc:
        yield str(path), None, str(exc)
    except OSError as exc:
        yield str(path), None, f"cannot read: {exc.strerror or exc}"
    else:
        yield str(path), data, ""


def iter_upload_bytes(uploads: list[tuple[str, bytes]]
                      ) -> Iterator[tuple[str, bytes | None, str]]:
    """Yield (name, bytes or None, error) for uploaded files: images as they are, zips
    member by member, all in memory."""
    for name, data in uploads:
        if Path(name).suffix.lower() == ".zip":
            yield from _read_zip(io.BytesIO(data), Path(name).name)
        elif len(data) > MAX_FILE_BYTES:
            yield name, None, "file too large"
        else:
            yield name, data, ""


def _read_zip(source: Path | io.BytesIO, label: str
              ) -> Iterator[tuple[str, bytes | None, str]]:
    """Members of the zip ``source``, named ``<label>:<member>``."""
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        yield (str(source) if isinstance(source, Path) else label), None, \
            f"not a readable zip: {exc}"
        return
    total = 0
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise ImageLabError(f"{label} has {len(members):,} files; the limit is {MAX_MEMBERS:,}")
        for m in members:
            name = f"{label}:{m.filename}"
            if Path(m.filename).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if m.file_size > MAX_FILE_BYTES:
                yield name, None, "file too large"
                continue
            try:
                with zf.open(m) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
                yield name, None, f"cannot read from the zip: {exc}"
                continue
            if len(data) > MAX_FILE_BYTES:
                yield name, None, "file too large"
                continue
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise ImageLabError(f"{label} unpacks to more than {MAX_TOTAL_BYTES >> 30} GB")
            yield name, data, ""


def predict_paths(lm: LoadedModel, paths: list[str | Path], *, threshold: float = 0.0,
                  batch_size: int = 64, progress=None) -> list[dict]:
    """One row per image: path, prediction (or 'unknown'), confidence, every class's probability."""
    return predict_items(lm, iter_image_bytes(paths), threshold=threshold,
                         batch_size=batch_size, progress=progress)


def predict_uploads(lm: LoadedModel, uploads: list[tuple[str, bytes]], *,
                    threshold: float = 0.0, batch_size: int = 64, progress=None) -> list[dict]:
    """``predict_paths`` for uploaded (name, bytes) pairs: nothing is written to disk, so
    sessions share no folder and nothing is left to clean up."""
    return predict_items(lm, iter_upload_bytes(uploads), threshold=threshold,
                         batch_size=batch_size, progress=progress)


def predict_items(lm: LoadedModel, items: Iterator[tuple[str, bytes | None, str]], *,
                  threshold: float = 0.0, batch_size: int = 64, progress=None) -> list[dict]:
    """Rows for (name, bytes or None, error) items, predicted in batches of ``batch_size``."""
    rows: list[dict] = []
    pending: list[tuple[str, object]] = []

    def flush():
        if not pending:
            return
        probs = lm.predict([img for _, img in pending])
        for (name, _), p in zip(pending, probs):
            best = int(np.argmax(p))
            conf = float(p[best])
            rows.append({"path": name, "prediction": lm.classes[best] if conf >= threshold
                         else "unknown", "confidence": conf, "error": "",
                         **{f"p_{c}": float(v) for c, v in zip(lm.classes, p)}})
        pending.clear()
        if progress:
            progress(len(rows), None, f"{len(rows)} files done")

    for name, data, error in items:
        if data is None:
            rows.append({"path": name, "prediction": "", "confidence": None, "error": error})
            continue
        try:
            pending.append((name, decode_image(data).image))
        except BadImage as exc:
            rows.append({"path": name, "prediction": "", "confidence": None, "error": str(exc)})
        if len(pending) >= batch_size:
            flush()
    flush()
    return rows


def rows_to_csv(rows: list[dict], classes: list[str]) -> str:
    """Prediction rows as CSV text: path, prediction, confidence, error, then one ``p_<class>``
    probability column per class.

    Text cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return) get a leading ``'``, as OWASP advises against CSV
    injection (``core.labels.io.csv_cell``)."""
    columns = ["path", "prediction", "confidence", "error"] + [f"p_{c}" for c in classes]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_cell(v) for k, v in r.items()})
    return buf.getvalue()
