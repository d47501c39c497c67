"""A generated corpus of good, unusual, broken and hostile inputs (real files, no mocks)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(seed: int, size=(24, 20), mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int, size=(32, 32), mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` (a tiny real file otherwise)."""
    data = png_bytes(0, (4, 4), "L")
    ihdr_start = 8 + 8  # signature, then length + "IHDR"
    body = bytearray(data[ihdr_start:ihdr_start + 13])
    body[0:8] = struct.pack(">II", width, height)
    crc = zlib.crc32(b"IHDR" + bytes(body)) & 0xFFFFFFFF
    return data[:ihdr_start] + bytes(body) + struct.pack(">I", crc) + data[ihdr_start + 17:]


def bomb_png() -> bytes:
    """A real PNG of 9000×9000 black pixels: 81 M pixels in ~80 kB."""
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")
    return buf.getvalue()


def unusual_modes() -> dict[str, bytes]:
    out = {}
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)) \
        .convert("CMYK").save(buf, format="JPEG")
    out["cmyk.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    arr16 = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    Image.fromarray(arr16).save(buf, format="PNG")
    out["sixteen-bit.png"] = buf.getvalue()
    buf = io.BytesIO()
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (4, 4, 12, 12))
    pal.save(buf, format="PNG", transparency=0)
    out["palette-transparent.png"] = buf.getvalue()
    buf = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out["animated.gif"] = buf.getvalue()
    return out


def broken_files() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, a word the skip reason must contain)."""
    good = png_bytes(99, (40, 40))
    return {
        "truncated.png": (good[: len(good) // 2], "truncated"),
        "truncated.jpg": (jpeg_bytes(5)[:300], "truncated"),
        "empty.png": (b"", "empty"),
        "text.jpg": (b"this is not an image at all\n" * 4, "not an image"),
        "huge-declared.png": (png_declaring(200_000, 200_000), "too large"),
        "bomb.png": (bomb_png(), "bomb"),
        "vector.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
    }


def write_imagefolder(root: Path, classes=("cat", "dog"), per_class=4, splits=None, seed=0) -> int:
    """Write an ImageFolder tree; return the number of images written."""
    n = 0
    for split in (splits or [None]):
        for _c, cls in enumerate(classes):
            folder = root / split / cls if split else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (folder / f"{i}.png").write_bytes(png_bytes(seed * 10_000 + n))
                n += 1
    return n


def zip_with(path: Path, entries: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 << 16)
            zf.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def tar_with(path: Path, entries: list[tuple[str, bytes]], *, symlink=None, hardlink=None,
             device=None, mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        if symlink:
            ti = tarfile.TarInfo(symlink[0])
            ti.type, ti.linkname = tarfile.SYMTYPE, symlink[1]
            tf.addfile(ti)
        if hardlink:
            ti = tarfile.TarInfo(hardlink[0])
            ti.type, ti.linkname = tarfile.LNKTYPE, hardlink[1]
            tf.addfile(ti)
        if device:
            ti = tarfile.TarInfo(device)
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            tf.addfile(ti)
    return path


def tree_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}
