"""What a local file is, judged by its content: an archive, or an image (perhaps with an
archive appended: a polyglot).

A file that starts with an image format's signature is an image, even when a zip is
appended to it (a zip is found from the end of a file, so ``zipfile.is_zipfile`` says yes
to such a PNG); it is read as the image, and the report says an archive was ignored.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from core.data.ingest import DatasetWriter

# File signatures of the image formats we decode: a file that starts with one is an image,
# even when an archive is appended to it (a zip is found from the end of a file).
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
                b"II*\x00", b"MM\x00*")


def starts_like_image(path: Path) -> bool:
    """True if ``path`` begins with an image format's signature (PNG, JPEG, GIF, BMP, TIFF,
    WebP); False if not or unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def is_archive(path: Path) -> bool:
    """True if ``path`` is a zip or tar file (judged by content, not name); False if unreadable
    or if it starts as an image (a PNG with a zip appended is an image: see
    ``note_appended_archive``)."""
    try:
        return not starts_like_image(path) and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))
    except OSError:
        return False


def note_appended_archive(writer: DatasetWriter, path: Path, display: str) -> None:
    """Say in the report when the image file ``path`` also carries an archive (a polyglot):
    it is read as the image and the archive is never extracted."""
    try:
        polyglot = starts_like_image(path) and zipfile.is_zipfile(path)
    except OSError:
        polyglot = False
    if polyglot:
        writer.note(f"{display}: an image with a zip archive appended; read as the image, "
                    "the archive was not extracted")
