"""Where images come from. One small module per source; all of them feed a
``DatasetWriter`` (core/data/ingest.py), so every source gets the same decoding,
checks, splits, report, thumbnails and cache.

``import_source(ws, SOURCE, name)`` picks the source from the string, as the CLI
``python -m core datasets import SOURCE --name NAME`` does:

- ``sample:digits`` ...              built-in samples (core/data/samples.py)
- ``torchvision:MNIST`` ...          torchvision's datasets (torchvision_sets.py)
- ``http(s)://...``                  an archive, a manifest or an image (url.py)
- ``sqlite:///file.db`` (any SQLAlchemy URL) with ``query``  (sql.py)
- a folder                           ImageFolder or flat (folder.py)
- a ``.zip``/``.tar``/``.tar.gz``/``.tgz`` file               (archive.py)
- a ``.csv``/``.json`` manifest                               (manifest.py)

Uploads and webcam shots come from the dashboard through ``import_uploads``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.data import net
from core.data.files import check_file_or_folder, read_file, shown_name
from core.data.import_rows import ImportReport
from core.data.ingest import DatasetWriter, Progress
from core.data.samples import import_sample
from core.data.sources import archive, file_kind, folder, manifest, sql, torchvision_sets, url
from core.data.sources.archive import ARCHIVE_SUFFIXES
from core.data.sources.sql import is_sql_url
from core.data.sources.uploads import import_uploaded_archive, import_uploaded_files
from core.data.url_guard import redact_url
from core.errors import ImageLabError
from core.store.path_policy import check_server_path
from core.store.workspace import Workspace


@dataclass
class ImportOptions:
    """Everything a source may need besides its location."""
    append: bool = False             # add to an existing dataset of that name
    seed: int = 0
    label: str | None = None         # uploads, flat folders: put every image in this class
    query: str | None = None         # SQL sources
    root: str | None = None          # torchvision: folder holding (or receiving) the files
    download: bool = True            # torchvision: download when the files are missing
    limit: int | None = None         # torchvision: images per split (quick looks)
    sha256: str | None = None        # URL: expected checksum
    max_bytes: int | None = None     # URL: size cap
    timeout: float | None = None     # URL: overall time cap, seconds
    allow_private_urls: bool | None = None  # URL: allow loopback/private addresses
    count: int | None = None         # sample:shapes
    size: int | None = None          # sample:shapes
    network: bool = False            # network mode: server paths only under the data roots


def default_name(source: str) -> str:
    """A dataset name derived from the source (``data/cats.zip`` → ``cats``)."""
    s = source.rstrip("/")
    if ":" in s and not s.lower().startswith(("http://", "https://", "sqlite", "/")) and \
            not re.match(r"^[A-Za-z]:[\\/]", s):
        s = s.split(":", 1)[1]
    s = s.split("?")[0].rstrip("/")
    base = re.split(r"[\\/]", s)[-1] or "dataset"
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar", ".csv", ".json", ".db",
                   ".sqlite", ".sqlite3"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "dataset"
    return base[:64]


def import_source(ws: Workspace, source: str, name: str | None = None,
                  options: ImportOptions | None = None,
                  progress: Progress | None = None) -> ImportReport:
    """Import ``source`` into dataset ``name`` (see the module docstring)."""
    opts = options or ImportOptions()
    source = source.strip()
    if not source:
        raise ImageLabError("no source given")
    if source.startswith("sample:"):
        if opts.append:
            raise ImageLabError("built-in samples are imported as new datasets, not appended")
        return import_sample(ws, source, name, seed=opts.seed, count=opts.count, size=opts.size,
                             progress=progress)
    name = name or default_name(source)
    kind = source_kind(source)
    # server paths pass the network-mode policy before anything on disk is looked at
    path = check_server_path(source, opts.network) if kind == "path" else None
    tv_root = ws.root / "torchvision"
    if kind == "torchvision" and opts.root:
        tv_root = check_server_path(opts.root, opts.network)
    fractions = torchvision_sets.FRACTIONS if kind == "torchvision" else None
    with DatasetWriter(ws, name, _describe(source), append=opts.append, seed=opts.seed,
                       fractions=fractions, progress=progress) as writer:
        if kind == "torchvision":
            torchvision_sets.import_torchvision(writer, source, tv_root, download=opts.download,
                                                limit=opts.limit, progress=progress)
        elif kind == "url":
            url.import_url(ws, writer, source, max_bytes=opts.max_bytes or net.MAX_BYTES,
                           timeout=opts.timeout or net.TIMEOUT_S, sha256=opts.sha256,
                           allow_private=opts.allow_private_urls, progress=progress,
                           label=opts.label)
        elif kind == "sql":
            sql.import_sql(writer, source, opts.query, network=opts.network)
        else:
            if not path.exists():
                raise ImageLabError(f"source {source!r} not found: give a folder, an archive "
                                    "(zip, tar, tar.gz, tgz), a CSV/JSON manifest, an http(s) "
                                    "URL, a SQLAlchemy URL with --query, torchvision:NAME or "
                                    "sample:NAME")
            # a device or FIFO (/dev/zero, a pipe) could be read forever: refused unread
            check_file_or_folder(path)
            if path.is_dir():
                folder.import_folder(writer, path, label=opts.label)
            elif path.name.lower().endswith(manifest.MANIFEST_SUFFIXES):
                manifest.import_manifest(writer, path, confine=opts.network)
            elif file_kind.is_archive(path):
                archive.import_archive(ws, writer, path, label=opts.label, progress=progress)
            elif path.name.lower().endswith(archive.ARCHIVE_SUFFIXES):
                raise ImageLabError(f"{path.name} is not a readable archive (damaged, or not "
                                    "really a zip/tar)")
            else:
                file_kind.note_appended_archive(writer, path, shown_name(path.name))
                ok = writer.add_bytes(read_file(path), original_name=shown_name(path.name),
                                      label=opts.label)
                if not ok:
                    raise ImageLabError(f"{path.name}: {writer.skipped[-1].reason}")
        return writer.commit()


def import_uploads(ws: Workspace, name: str, files: list[tuple[str, bytes]], *,
                   label: str | None = None, append: bool = False, seed: int = 0,
                   progress: Progress | None = None, source: str = "upload") -> ImportReport:
    """Uploaded images (or webcam shots) into ``label``; archives among them are extracted."""
    if not files:
        raise ImageLabError("no files were uploaded")
    with DatasetWriter(ws, name, source, append=append, seed=seed, progress=progress) as writer:
        images = [(n, d) for n, d in files if not n.lower().endswith(ARCHIVE_SUFFIXES)]
        for n, d in files:
            if n.lower().endswith(ARCHIVE_SUFFIXES):
                import_uploaded_archive(ws, writer, n, d, label=label, progress=progress)
        if images:
            import_uploaded_files(writer, images, label=label)
        return writer.commit()


def source_kind(source: str) -> str:
    """Which importer a source string needs: ``torchvision``, ``url``, ``sql`` or ``path``.

    Raises ``ImageLabError`` for any other URL scheme (e.g. ``ftp://``).
    """
    low = source.lower()
    if low.startswith("torchvision:"):
        return "torchvision"
    if low.startswith(("http://", "https://")):
        return "url"
    if is_sql_url(source):
        return "sql"
    if re.match(r"^[a-z][a-z0-9+.-]*://", low):
        raise ImageLabError(f"unsupported URL scheme in {source!r}: use http(s), or a "
                            "SQLAlchemy URL (sqlite:///file.db) with --query")
    return "path"


def _describe(source: str) -> str:
    """The source as stored on the dataset (passwords in URLs hidden)."""
    source = shown_name(source)     # a path with bytes that are not UTF-8
    return redact_url(source)[:500] if "//" in source else source[:500]
