"""Small thumbnails for galleries, keyed by content hash.

An image already at thumbnail size (both sides at most ``THUMB_SIZE``) whose file
shows exactly its decoded pixels (``DecodedImage.plain``: PNG or JPEG, upright, no
transparency) is its own thumbnail: nothing is written for it, and
``thumbnail_file`` answers with the stored original (its bytes are PNG or JPEG;
readers such as ``st.image`` go by the content). Any other image gets a cached JPEG
under ``thumbnail_path``. Tiny images (under a quarter of ``THUMB_SIZE``, such as
8×8 digits) always do, scaled *up* with nearest-neighbour so that the gallery shows
crisp pixels instead of a browser's blur.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from PIL import Image

THUMB_SIZE = 96


def _location(thumbs_dir, sha256: str) -> tuple[str, str]:
    """(folder, file) of a cached thumbnail, as strings: ``write_thumbnail`` runs once per
    imported image, where pathlib's parsing costs more than the file system calls."""
    folder = f"{thumbs_dir}/{sha256[:2]}"
    return folder, f"{folder}/{sha256}.jpg"


def thumbnail_path(thumbs_dir: Path, sha256: str) -> Path:
    """Where the cached JPEG thumbnail of the image with content hash ``sha256`` lives (or would)."""
    return Path(_location(thumbs_dir, sha256)[1])


def make_thumbnail_bytes(img: Image.Image, size: int = THUMB_SIZE) -> bytes:
    """``img`` scaled so its longer side is ``size`` pixels, as JPEG bytes (quality 85).

    Smaller images are scaled up with nearest-neighbour (crisp pixels), larger ones down
    bilinearly; modes other than L and RGB are converted to RGB.
    """
    w, h = img.size
    scale = size / max(w, h)
    new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    thumb = img.resize(new_size, resample)
    if thumb.mode not in ("L", "RGB"):
        thumb = thumb.convert("RGB")
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def thumbnail_file(root: Path, thumbs_dir: Path, sha256: str, rel_path: str) -> Path:
    """The file to show as an image's thumbnail: its cached thumbnail, or the stored
    original where that is its own thumbnail (see the module docstring)."""
    path = thumbnail_path(thumbs_dir, sha256)
    return path if path.exists() else Path(root) / rel_path


def is_own_thumbnail(img: Image.Image, plain: bool) -> bool:
    """True if the stored original can be shown as the thumbnail: its file shows exactly
    its pixels (``plain``) and its longer side is between a quarter of ``THUMB_SIZE`` and
    ``THUMB_SIZE``.
    """
    return plain and THUMB_SIZE // 4 <= max(img.size) <= THUMB_SIZE


def write_thumbnail(thumbs_dir: Path, sha256: str, img: Image.Image, plain: bool = False) -> None:
    """Cache the thumbnail of ``img`` unless it is its own (``plain``: its stored file
    shows exactly these pixels)."""
    if is_own_thumbnail(img, plain):
        return
    folder, path = _location(thumbs_dir, sha256)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.{sha256}.jpg.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(make_thumbnail_bytes(img))
        os.replace(tmp, path)
