"""Safe, complete image decoding shared by every importer, the trainer and the demo.

Every image is opened under an allow-list of formats, fully decoded (``load()``,
not ``verify()``), bounded by decompression-bomb limits, turned upright with its
EXIF orientation, and normalised to ``L`` (grayscale) or ``RGB``.

Failures raise ``BadImage`` with a short reason a user can act on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps

# This module ships inside every export bundle (predict.py imports it): no project imports.


ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")
MAX_PIXELS = 64_000_000           # ~8000×8000; beyond this we refuse (bomb guard)
MAX_FILE_BYTES = 50 * 1024 * 1024  # one image file larger than this is refused

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, MemoryError, NotImplementedError,
                  OverflowError, TypeError, EOFError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning)


class BadImage(Exception):
    """The bytes are not an image we accept; ``str(exc)`` is the reason."""


@dataclass
class DecodedImage:
    """An image decoded by ``decode_image``: the upright ``L`` or ``RGB`` pixels and facts about
    the file (format detected from content, the file's own mode, size in pixels).
    """
    image: Image.Image   # mode "L" or "RGB", upright
    format: str          # PNG, JPEG, ... as detected from content (not the file name)
    source_mode: str     # the mode stored in the file (e.g. CMYK, P, I;16)
    width: int
    height: int
    plain: bool = False  # the file itself shows exactly these pixels (see ``_is_plain``)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode ``data`` fully and safely, or raise ``BadImage``."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise BadImage(f"file too large ({len(data) / 2**20:.0f} MiB > {MAX_FILE_BYTES // 2**20} MiB)")
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
            except Image.UnidentifiedImageError:
                raise BadImage("not an image, or a format that is not supported "
                               f"(allowed: {', '.join(ALLOWED_FORMATS)})") from None
            fmt = img.format or "?"
            width, height = img.size
            if width * height > max_pixels:
                raise BadImage(f"image too large (a decompression bomb?): {width}×{height} pixels "
                               f"(limit {max_pixels:,} pixels)")
            source_mode = img.mode
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                img.seek(0)  # animated: take the first frame
            img.load()
            orientation = _orientation(img, fmt)
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
            plain = _is_plain(img, fmt, frames, orientation)
            img = normalise_mode(img)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"image too large (a decompression bomb?): its declared size exceeds "
                       f"{max_pixels:,} pixels") from None
    except _DECODE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            raise BadImage("truncated image file") from None
        raise BadImage(f"cannot decode image: {reason}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return DecodedImage(img, fmt, source_mode, img.width, img.height, plain)


def _orientation(img: Image.Image, fmt: str) -> int:
    """The EXIF orientation (1 = upright). A loaded PNG or JPEG holds its EXIF block in
    ``info["exif"]`` when it has one; without it there is nothing to parse."""
    if fmt in ("PNG", "JPEG") and not img.info.get("exif"):
        return 1
    return img.getexif().get(ExifTags.Base.Orientation, 1)


def _is_plain(img: Image.Image, fmt: str, frames: int, orientation: int) -> bool:
    """True when a browser shows the file as these decoded pixels: one upright frame of
    PNG or JPEG in L or RGB, with no transparency and no colour profile."""
    return (fmt in ("PNG", "JPEG") and img.mode in ("L", "RGB") and frames == 1
            and orientation == 1 and "transparency" not in img.info
            and "icc_profile" not in img.info)


def normalise_mode(img: Image.Image) -> Image.Image:
    """Bring any PIL mode to ``L`` or ``RGB``; transparency goes onto white."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("1",):
        return img.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        return Image.fromarray(scaled.round().astype("uint8"), mode="L")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX...


def load_image_file(path, *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Read a file and decode it; unreadable files become ``BadImage``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadImage(f"cannot read file: {exc.strerror or exc}") from None
    return decode_image(data, max_pixels=max_pixels)
