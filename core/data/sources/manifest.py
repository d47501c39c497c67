"""Manifest source: a CSV or JSON list of ``path|url, label[, split]``.

CSV needs a header row naming the columns (``path`` or ``url``, ``label``, and
optionally ``split``; ``file``/``filename``/``image`` and ``class`` are accepted
too). JSON is a list of such objects, or ``{"images": [...]}``. Relative paths are
read from the manifest's folder; ``confine=True`` (a manifest that came from an
archive or a URL) refuses paths that leave it. URLs are fetched with the URL
source's safety rules. Rows naming missing files or a bad split are skipped and
reported; rows with an empty label are imported unlabelled, with a note.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import urljoin

from core.data.catalog import SPLITS
from core.data.files import read_file
from core.data.import_reading import SourceItem
from core.data.ingest import DatasetWriter
from core.data.net import fetch_bytes
from core.errors import ImageLabError

MANIFEST_SUFFIXES = (".csv", ".json")
_PATH_KEYS = ("path", "file", "filename", "image", "filepath")
_URL_KEYS = ("url", "uri", "href")
_LABEL_KEYS = ("label", "class", "category", "target")


def parse_manifest(text: str, display: str) -> list[dict]:
    """Rows as dicts with lower-cased keys; raises a clear error for a bad manifest."""
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ImageLabError(f"manifest {display} is empty")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ImageLabError(f"manifest {display} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("images", data.get("rows"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ImageLabError(f"manifest {display}: JSON must be a list of objects "
                                "like {\"path\": ..., \"label\": ...} (or {\"images\": [...]})")
        rows = [{str(k).strip().lower(): v for k, v in r.items()} for r in data]
    else:
        reader = csv.DictReader(io.StringIO(stripped))
        if not reader.fieldnames:
            raise ImageLabError(f"manifest {display} has no header row")
        rows = [{(k or "").strip().lower(): v for k, v in r.items()} for r in reader]
        keys = {(k or "").strip().lower() for k in reader.fieldnames}
        if not keys & set(_PATH_KEYS + _URL_KEYS):
            raise ImageLabError(f"manifest {display} needs a 'path' or 'url' column "
                                f"(found: {', '.join(sorted(keys))})")
    return rows


def manifest_items(writer: DatasetWriter, text: str, display: str, *, base_dir: Path | None,
                   base_url: str | None = None, confine: bool = False,
                   url_options: dict | None = None) -> list[SourceItem]:
    """The rows of a CSV or JSON manifest ``text`` as ``SourceItem``s, in order.

    A row names a local ``path`` (relative to ``base_dir``) or a ``url`` (relative to
    ``base_url``), and optionally a label and a split. Rows that cannot be used (unknown
    split, missing file, a path leaving ``base_dir`` when ``confine``) go to
    ``writer.skip``; ``url_options`` are passed to ``fetch_bytes``. ``display`` names the
    manifest in messages. Raises ``ImageLabError`` for a manifest that cannot be parsed.
    """
    rows = parse_manifest(text, display)
    items: list[SourceItem] = []
    base = base_dir.resolve() if base_dir else None
    for n, row in enumerate(rows, start=2 if not text.lstrip().startswith(("[", "{")) else 1):
        where = f"{display} row {n}"
        path = _first(row, _PATH_KEYS)
        url = _first(row, _URL_KEYS)
        label = _first(row, _LABEL_KEYS)
        split = _first(row, ("split", "subset"))
        if split:
            split = split.lower()
            split = {"valid": "val", "validation": "val", "training": "train"}.get(split, split)
            if split not in SPLITS:
                writer.skip(f"{where}: {path or url}", f"unknown split {split!r} "
                                                       f"(use {', '.join(SPLITS)})")
                continue
        if not label:
            label = None
            writer.note(f"{where}: empty label, imported unlabelled")
        if url or (path and path.lower().startswith(("http://", "https://"))):
            target = url or path
            if base_url:
                target = urljoin(base_url, target)
            items.append(SourceItem(target, lambda u=target: fetch_bytes(u, **(url_options or {})),
                                    label, split or None))
        elif path:
            p = Path(path).expanduser()
            if not p.is_absolute():
                if base is None:
                    writer.skip(f"{where}: {path}", "a relative path in a manifest from a URL "
                                                    "cannot be read; use full URLs")
                    continue
                p = base / p
            if confine and base is not None:
                resolved = p.resolve()
                if resolved != base and base not in resolved.parents:
                    writer.skip(f"{where}: {path}", "path leaves the manifest's folder: refused")
                    continue
            if not p.is_file():
                writer.skip(f"{where}: {path}", "file not found")
                continue
            items.append(SourceItem(path, lambda q=p: read_file(q), label, split or None, path=p))
        else:
            writer.skip(where, "no path or url in this row")
    return items


def import_manifest(writer: DatasetWriter, manifest: Path, *, confine: bool = False,
                    display: str = "") -> None:
    """Import the images a manifest file lists (see ``manifest_items``); paths are relative
    to the manifest's folder. Raises ``ImageLabError`` if the file cannot be read.
    """
    manifest = Path(manifest)
    try:
        text = manifest.read_bytes()[:64 * 1024 * 1024].decode("utf-8", errors="replace")
    except OSError as exc:
        raise ImageLabError(f"cannot read manifest {manifest}: {exc.strerror or exc}") from None
    items = manifest_items(writer, text, display or manifest.name, base_dir=manifest.parent,
                           confine=confine)
    writer.add_items(items)


def _first(row: dict, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = row.get(k)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None
