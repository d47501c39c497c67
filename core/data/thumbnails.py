"""Small JPEG thumbnails for galleries, keyed by content hash.

Tiny images (8×8 digits) are scaled *up* with nearest-neighbour so that the
gallery shows crisp pixels instead of a blur.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from PIL import Image

THUMB_SIZE = 96


def thumbnail_path(thumbs_dir: Path, sha256: str) -> Path:
    return thumbs_dir / sha256[:2] / f"{sha256}.jpg"


def make_thumbnail_bytes(img: Image.Image, size: int = THUMB_SIZE) -> bytes:
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


def write_thumbnail(thumbs_dir: Path, sha256: str, img: Image.Image) -> Path:
    path = thumbnail_path(thumbs_dir, sha256)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(make_thumbnail_bytes(img))
        tmp.replace(path)
    return path
