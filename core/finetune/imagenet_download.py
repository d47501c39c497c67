"""Downloading torchvision's ImageNet weights, only when asked (the Fine-tune page's
Download button; choosing a source never downloads).

``torchvision_file(arch)`` says what the file is, how large, and whether it is already in
the torch hub folder (``$TORCH_HOME/hub/checkpoints``). ``download_imagenet_weights(arch,
progress)`` fetches it there through the guarded downloader (``core.data.net.fetch``: a
size cap, one deadline, no private addresses), then checks it the way ``torch.hub`` does:
the hex digits after the last ``-`` of the file name (``resnet18-f37072fd.pth``) must
begin the file's SHA-256. The file is written beside its final name and moved into place
only once checked, so a stopped or failed download never leaves a torn weights file. With
``$IMAGELAB_OFFLINE=1`` nothing is fetched: a clear ``ImageLabError`` says so and names the
source that works offline.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch

from core.data.net import fetch
from core.errors import ImageLabError
from core.finetune.imagenet import IMAGENET, LITE0, OFFLINE_ENV, imagenet_file
from core.units import MIB

# One wall-clock limit for the whole download (fetch's deadline): ConvNeXt-Tiny's 109 MiB
# at a slow 0.5 MiB/s still fits.
DOWNLOAD_TIMEOUT_S = 600.0
OFFLINE_SOURCE = f"{LITE0}:{IMAGENET}"


def torchvision_file(arch: str) -> dict:
    """``{"arch", "file", "folder", "path", "url", "size_mib", "present"}`` for
    torchvision's ImageNet weights of ``arch`` (``size_mib`` as torchvision states it)."""
    weights, name, folder = imagenet_file(arch)
    size = weights.meta.get("_file_size")
    return {"arch": arch, "file": name, "folder": folder, "path": folder / name,
            "url": weights.url, "size_mib": float(size) if size else None,
            "present": (folder / name).is_file()}


def hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix a torch hub file name carries (``resnet18-f37072fd.pth`` ->
    ``f37072fd``), as ``torch.hub`` reads it; None when the name has none."""
    m = torch.hub.HASH_REGEX.search(file_name)
    return m.group(1) if m and m.group(1) else None


def download_imagenet_weights(arch: str, progress=None) -> Path:
    """Download torchvision's ImageNet weights for ``arch`` into the torch hub folder and
    return the file's path (at once when it is already there). ``progress(done, total,
    text)`` is called as bytes arrive. Raises ``ImageLabError`` offline
    (``$IMAGELAB_OFFLINE=1``), when the download fails, or when the hash does not match."""
    info = torchvision_file(arch)
    if info["present"]:
        return info["path"]
    if os.environ.get(OFFLINE_ENV) == "1":
        raise ImageLabError(
            f"{info['file']} cannot be downloaded: downloads are off on this machine "
            f"(${OFFLINE_ENV}=1). Fine-tune from {OFFLINE_SOURCE}, which works offline, or "
            f"put the file in {info['folder']} (from {info['url']}, on a machine with a "
            "connection)")
    max_bytes = int((info["size_mib"] or 2048) * 1.1 * MIB) + MIB
    try:
        return fetch_hub_file(info["url"], info["folder"], progress=progress,
                              max_bytes=max_bytes, timeout=DOWNLOAD_TIMEOUT_S)
    except ImageLabError as exc:
        raise ImageLabError(f"{info['file']} could not be downloaded: {exc}. "
                            f"{OFFLINE_SOURCE} works offline") from None


def fetch_hub_file(url: str, folder: Path, *, progress=None, max_bytes: int | None = None,
                   timeout: float = DOWNLOAD_TIMEOUT_S, allow_private: bool | None = None) -> Path:
    """Fetch ``url`` into ``folder`` under its own file name, checked against the hash
    prefix in that name (see ``hash_prefix``); the path. Nothing is left behind on failure."""
    name = url.rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise ImageLabError(f"{url} names no file")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.{uuid.uuid4().hex[:8]}.partial"
    options = {"max_bytes": max_bytes} if max_bytes else {}
    try:
        got = fetch(url, dest=partial, timeout=timeout, progress=progress,
                    allow_private=allow_private, **options)
        prefix = hash_prefix(name)
        if prefix and not got.sha256.startswith(prefix):
            raise ImageLabError(f"the file downloaded from {url} is not the one its name "
                                f"promises (sha256 {got.sha256[:12]}…, expected "
                                f"{prefix}…): it was not kept")
        os.replace(partial, folder / name)
    finally:
        partial.unlink(missing_ok=True)
    return folder / name
