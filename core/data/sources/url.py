"""URL source: download an archive or a manifest (or one image) over http(s), safely.

The download itself (scheme, size, time and address checks; redirects) is
``core.data.net.fetch``; this module decides what the file is and imports it. It
goes to a fresh file under the workspace's ``tmp/``. A manifest fetched this way may
name only URLs, never a file on this machine (see ``sources/manifest.py``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from core.data.net import MAX_BYTES, TIMEOUT_S, fetch, redact_url
from core.data.sources.archive import import_archive
from core.data.sources.file_kind import is_archive, note_appended_archive
from core.data.sources.manifest import MAX_MANIFEST_BYTES, manifest_items, manifest_text
from core.errors import ImageLabError


def import_url(ws, writer, url: str, *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_S,
               sha256: str | None = None, allow_private: bool | None = None,
               progress=None, label: str | None = None) -> None:
    """Download ``url`` and import it as an archive, a manifest or a single image."""
    tmp = ws.tmp_dir / f"download-{secrets.token_hex(6)}"
    try:
        dl = fetch(url, dest=tmp, max_bytes=max_bytes, timeout=timeout, sha256=sha256,
                   allow_private=allow_private, progress=progress)
        name = Path(urlsplit(dl.url).path).name or "download"
        with open(tmp, "rb") as fh:
            head = fh.read(512)
        if is_archive(tmp):
            import_archive(ws, writer, tmp, display_name=name, label=label, progress=progress)
            return
        text_head = head.lstrip().lower()
        if dl.content_type == "text/html" or text_head.startswith((b"<!doctype html", b"<html")):
            raise ImageLabError(f"{redact_url(dl.url)} returned an HTML page, not an archive, a manifest "
                                "or an image (is it a download page rather than the file?)")
        if (dl.content_type in ("text/csv", "application/json", "text/plain")
                or name.lower().endswith((".csv", ".json"))) and not _looks_binary(head):
            with open(tmp, "rb") as fh:
                text = manifest_text(fh.read(MAX_MANIFEST_BYTES + 1), name)
            # no base_dir: a manifest from a URL names only URLs (relative ones against
            # dl.url), each fetched through the same guard; it never reads a local file
            # base_url redacted: rows are named by it in the report, and fetch never sends
            # a URL's credentials anyway
            items = manifest_items(writer, text, name, base_dir=None,
                                   base_url=redact_url(dl.url),
                                   url_options={"allow_private": allow_private,
                                                "timeout": timeout})
            writer.add_items(items)
            return
        note_appended_archive(writer, tmp, redact_url(dl.url))
        writer.add_bytes(tmp.read_bytes(), original_name=redact_url(dl.url), label=label)
    finally:
        tmp.unlink(missing_ok=True)


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head
