"""Uploads and the webcam: image files (or a whole directory) sent by the browser.

Each upload is ``(name, bytes)``. Images go into one chosen class (or stay
unlabelled); an uploaded archive is written to the workspace's ``tmp/`` and
imported with the archive source. A directory upload keeps its files' relative
names in the report.
"""

from __future__ import annotations

import secrets
from pathlib import PurePosixPath

from core.data.import_reading import SourceItem
from core.data.ingest import DatasetWriter
from core.data.sources.archive import ARCHIVE_SUFFIXES, import_archive
from core.errors import ImageLabError


def import_uploaded_files(writer: DatasetWriter, files: list[tuple[str, bytes]], *,
                          label: str | None = None, split: str | None = None) -> None:
    """Decode and add uploaded image files, all with ``label``."""
    if not files:
        raise ImageLabError("no files were uploaded")
    items = [SourceItem(name, lambda d=data: d, label, split) for name, data in files]
    writer.add_items(items)


def import_uploaded_archive(ws, writer: DatasetWriter, name: str, data: bytes, *,
                            label: str | None = None, progress=None) -> None:
    """Save an uploaded archive under tmp/ and import it with the archive source."""
    safe = PurePosixPath(name.replace("\\", "/")).name or "upload"
    if not safe.lower().endswith(ARCHIVE_SUFFIXES):
        raise ImageLabError(f"{safe} is not an archive (zip, tar, tar.gz or tgz)")
    tmp = ws.tmp_dir / f"upload-{secrets.token_hex(6)}-{safe}"
    try:
        tmp.write_bytes(data)
        import_archive(ws, writer, tmp, display_name=safe, label=label, progress=progress)
    finally:
        tmp.unlink(missing_ok=True)
