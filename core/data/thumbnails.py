"""Small thumbnails for galleries, keyed by content hash (``thumbnail_path``).

An image already at thumbnail size (both sides at most ``THUMB_SIZE``) whose file
shows exactly its decoded pixels (``DecodedImage.plain``: PNG or JPEG, upright, no
transparency) is its own thumbnail: the stored original is hardlinked at the
thumbnail's path, so no second file is encoded or written (its bytes are PNG or
JPEG whatever the name says; readers such as ``st.image`` go by the content).
Any other image gets a cached JPEG. Tiny images (under a quarter of ``THUMB_SIZE``,
such as 8×8 digits) always do, scaled *up* with nearest-neighbour so that the
gallery shows crisp pixels instead of a browser's blur.
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


def write_thumbnail(thumbs_dir: Path, sha256: str, img: Image.Image,
                    original: Path | str | None = None) -> str:
    """Cache the thumbnail of ``img``; ``original``: its stored file, when that file
    shows exactly ``img`` (see the module docstring)."""
    folder = f"{thumbs_dir}/{sha256[:2]}"
    path = f"{folder}/{sha256}.jpg"
    if original is not None and THUMB_SIZE // 4 <= max(img.size) <= THUMB_SIZE \
            and _link(original, folder, path):
        return path
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.{sha256}.jpg.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(make_thumbnail_bytes(img))
        os.replace(tmp, path)
    return path


def _link(original, folder: str, path: str) -> bool:
    """Hardlink ``original`` at ``path`` (True if a thumbnail is now there)."""
    for attempt in (0, 1):
        try:
            os.link(original, path, follow_symlinks=False)
            return True
        except FileExistsError:
            return True
        except FileNotFoundError:
            if attempt:
                return False
            os.makedirs(folder, exist_ok=True)
        except OSError:
            return False  # no hardlinks on this filesystem (or not allowed): encode one
    return False
