"""Manifest source: a CSV or JSON list of ``path|url, label[, split]``.

CSV needs a header row naming the columns (``path`` or ``url``, ``label``, and
optionally ``split``; ``file``/``filename``/``image`` and ``class`` are accepted
too). JSON is a list of such objects, or ``{"images": [...]}``. Rows naming missing
files or a bad split are skipped and reported; rows with an empty label are imported
unlabelled, with a note. A manifest over ``MAX_MANIFEST_BYTES``, or JSON nested too
deeply to parse, is refused with a clear error.

Where a row may point:

- A manifest on this machine (``base_dir`` given): local paths, relative ones read
  from the manifest's folder (``confine=True`` refuses paths that leave it), and
  http(s) URLs.
- A manifest fetched from a URL (``base_url`` given, no ``base_dir``): URLs only.
  A row may name an ``http``/``https`` URL or a relative URL, resolved against the
  manifest's URL. It never reads a file on this machine: an absolute path, a ``~``
  path, a ``file://`` (or any other scheme's) URL and a relative reference with a
  ``..`` segment are each reported, row by row, with the reason, and never read.
  Every URL is fetched by ``core.data.net.fetch_bytes``, so each one (and each
  redirect) passes the same scheme and address checks as the manifest itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from core.data.catalog import SPLITS
from core.data.files import read_file
from core.data.import_reading import SourceItem
from core.data.ingest import DatasetWriter
from core.data.net import fetch_bytes
from core.data.url_guard import redact_url
from core.errors import ImageLabError
from core.units import format_size

MANIFEST_SUFFIXES = (".csv", ".json")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_PATH_KEYS = ("path", "file", "filename", "image", "filepath")
_URL_KEYS = ("url", "uri", "href")
_LABEL_KEYS = ("label", "class", "category", "target")
_SPLIT_KEYS = ("split", "subset")
_REMOTE_ONLY_URLS = ("a manifest fetched from a URL may name only http(s) URLs and URLs "
                     "relative to it")


def parse_manifest(text: str, display: str) -> list[dict]:
    """Rows as dicts with lower-cased keys.

    Raises ``ImageLabError`` for a manifest that is empty, not valid CSV or JSON, JSON
    nested too deeply to parse, or not a list of rows.
    """
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ImageLabError(f"manifest {display} is empty")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except RecursionError:
            raise ImageLabError(f"manifest {display}: the JSON is nested too deeply to read; "
                                "a manifest is a flat list of rows like "
                                "{\"path\": ..., \"label\": ...}") from None
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
        try:
            if not reader.fieldnames:
                raise ImageLabError(f"manifest {display} has no header row")
            rows = [{(k or "").strip().lower(): v for k, v in r.items()} for r in reader]
        except csv.Error as exc:
            raise ImageLabError(f"manifest {display} is not valid CSV (line "
                                f"{reader.line_num}): {exc}") from None
        keys = {(k or "").strip().lower() for k in reader.fieldnames}
        if not keys & set(_PATH_KEYS + _URL_KEYS):
            raise ImageLabError(f"manifest {display} needs a 'path' or 'url' column "
                                f"(found: {', '.join(sorted(keys))})")
    return rows


def manifest_items(writer: DatasetWriter, text: str, display: str, *, base_dir: Path | None,
                   base_url: str | None = None, confine: bool = False,
                   url_options: dict | None = None) -> list[SourceItem]:
    """The rows of a CSV or JSON manifest ``text`` as ``SourceItem``s, in order.

    A row names a ``path`` or a ``url``, and optionally a label and a split. With
    ``base_dir`` (a manifest on this machine) a path is a local file, relative to
    ``base_dir``; ``confine`` refuses one that leaves it. Without ``base_dir`` (a manifest
    fetched from ``base_url``) no local file is ever read: a row must name an http(s) URL
    or a URL relative to ``base_url`` (see the module docstring). Rows that cannot be used
    (unknown split, missing file, a local path in a remote manifest, ...) go to
    ``writer.skip`` with the reason; ``url_options`` are passed to ``fetch_bytes``, which
    checks every URL's scheme and address. ``display`` names the manifest in messages.
    Raises ``ImageLabError`` for a manifest that cannot be parsed.
    """
    rows = parse_manifest(text, display)
    items: list[SourceItem] = []
    base = base_dir.resolve() if base_dir else None
    for n, row in enumerate(rows, start=2 if not text.lstrip().startswith(("[", "{")) else 1):
        where = f"{display} row {n}"
        nested = [k for k in _PATH_KEYS + _URL_KEYS + _LABEL_KEYS + _SPLIT_KEYS
                  if isinstance(row.get(k), (dict, list))]
        if nested:
            writer.skip(where, f"{nested[0]!r} is a list or an object, not text")
            continue
        path = _first(row, _PATH_KEYS)
        url = _first(row, _URL_KEYS)
        label = _first(row, _LABEL_KEYS)
        split = _first(row, _SPLIT_KEYS)
        if split:
            split = split.lower()
            split = {"valid": "val", "validation": "val", "training": "train"}.get(split, split)
            if split not in SPLITS:
                writer.skip(f"{where}: {redact_url(path or url or '')}",
                            f"unknown split {split!r} (use {', '.join(SPLITS)})")
                continue
        if not label:
            label = None
        if base is None and (url or path):
            target, reason = _remote_url(url or path, base_url, url_column=bool(url))
            if target is None:
                writer.skip(f"{where}: {redact_url(url or path)}", reason)
                continue
            if label is None:
                writer.note(f"{where}: empty label, imported unlabelled")
            items.append(_url_item(target, label, split, url_options))
            continue
        if label is None:
            writer.note(f"{where}: empty label, imported unlabelled")
        if url or (path and path.lower().startswith(("http://", "https://"))):
            target = url or path
            if base_url:
                target = urljoin(base_url, target)
            items.append(_url_item(target, label, split, url_options))
        elif path:
            p = Path(path).expanduser()
            if not p.is_absolute():
                p = base / p
            if confine:
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


def _url_item(url: str, label: str | None, split: str | None,
              url_options: dict | None) -> SourceItem:
    """A row naming ``url``, fetched (with every check) by ``fetch_bytes`` when read."""
    return SourceItem(redact_url(url), lambda: fetch_bytes(url, **(url_options or {})), label,
                      split or None)     # the name shows no URL password


def _remote_url(value: str, base_url: str | None, *, url_column: bool) -> tuple[str | None, str]:
    """(the URL to fetch, "") for a row of a manifest fetched from ``base_url``, or
    (None, the reason it is refused): such a row never names a file on this machine."""
    if re.match(r"^[A-Za-z]:[\\/]", value) or value.startswith(("\\", "~")) or (
            value.startswith("/") and not url_column):
        return None, f"a local path: not read ({_REMOTE_ONLY_URLS})"
    scheme = urlsplit(value).scheme.lower()
    if scheme and scheme not in ("http", "https"):
        return None, f"a {scheme}: URL: not read ({_REMOTE_ONLY_URLS})"
    if not scheme:
        if not base_url:
            return None, f"a relative path with no URL to resolve it against ({_REMOTE_ONLY_URLS})"
        if ".." in re.split(r"[\\/]", unquote(urlsplit(value).path)):
            return None, ("a '..' in a relative URL: refused (name a URL under the manifest's "
                          "folder, or a full http(s) URL)")
        value = urljoin(base_url, value)
    return value, ""


def import_manifest(writer: DatasetWriter, manifest: Path, *, confine: bool = False,
                    display: str = "") -> None:
    """Import the images a manifest file lists (see ``manifest_items``); paths are relative
    to the manifest's folder. Raises ``ImageLabError`` if the file cannot be read or is
    larger than ``MAX_MANIFEST_BYTES``.
    """
    manifest = Path(manifest)
    try:
        with open(manifest, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ImageLabError(f"cannot read manifest {manifest}: {exc.strerror or exc}") from None
    text = manifest_text(raw, display or manifest.name)
    items = manifest_items(writer, text, display or manifest.name, base_dir=manifest.parent,
                           confine=confine)
    writer.add_items(items)


def manifest_text(raw: bytes, display: str) -> str:
    """A manifest's bytes as text (UTF-8, bad bytes replaced); raises ``ImageLabError``
    if there are more than ``MAX_MANIFEST_BYTES``."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ImageLabError(f"manifest {display} is larger than the limit of "
                            f"{format_size(MAX_MANIFEST_BYTES)}")
    return raw.decode("utf-8", errors="replace")


def _first(row: dict, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = row.get(k)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None
