"""torchvision's built-in datasets: ``torchvision:MNIST``, ``FashionMNIST``, ``KMNIST``,
``CIFAR10``, ``CIFAR100``, ``SVHN``.

Files are read from ``root`` (default: the workspace's ``torchvision/`` folder)
when they are already there, in torchvision's own on-disk layout; otherwise they
are downloaded into ``root`` when ``download`` is on and the machine is online.
Offline, the error names the files and the folder to put them in.

The source's train/test split is kept; a seeded, stratified 15% of the training
part becomes the validation split.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.ingest import DatasetWriter
from core.errors import ImageLabError, NotFoundError

FRACTIONS = {"train": 0.85, "val": 0.15, "test": 0.0}


@dataclass(frozen=True)
class BuiltIn:
    """One torchvision dataset ImageLab can import: its class name in ``torchvision.datasets``
    and its ``kind`` (``mnist``, ``cifar`` or ``svhn``: which file layout it uses).
    """
    name: str
    kind: str   # mnist, cifar, svhn


BUILT_INS = {b.name.lower(): b for b in (
    BuiltIn("MNIST", "mnist"), BuiltIn("FashionMNIST", "mnist"), BuiltIn("KMNIST", "mnist"),
    BuiltIn("CIFAR10", "cifar"), BuiltIn("CIFAR100", "cifar"), BuiltIn("SVHN", "svhn"))}


def parse_builtin(source: str) -> BuiltIn:
    """The ``BuiltIn`` named by ``torchvision:NAME`` (or ``NAME``), case-insensitively.

    Raises ``NotFoundError`` listing the available ones.
    """
    key = source.split(":", 1)[1] if ":" in source else source
    b = BUILT_INS.get(key.strip().lower())
    if b is None:
        raise NotFoundError(f"unknown torchvision dataset {key!r}; available: "
                            + ", ".join(f"torchvision:{b.name}" for b in BUILT_INS.values()))
    return b


def _cls(b: BuiltIn):
    import torchvision.datasets as tvd
    return getattr(tvd, b.name)


def expected_files(b: BuiltIn, root: Path) -> tuple[Path, list[str]]:
    """The folder torchvision reads and the files it needs there."""
    cls = _cls(b)
    if b.kind == "mnist":
        return root / cls.__name__ / "raw", [os.path.splitext(os.path.basename(r[0]))[0]
                                             for r in cls.resources]
    if b.kind == "cifar":
        return root / cls.base_folder, [f[0] for f in cls.train_list + cls.test_list] + \
            [cls.meta["filename"]]
    return root, [cls.split_list[s][1] for s in ("train", "test")]


def _open(b: BuiltIn, root: Path, train: bool, download: bool):
    cls = _cls(b)
    if b.kind == "svhn":
        return cls(str(root), split="train" if train else "test", download=download)
    return cls(str(root), train=train, download=download)


def load_builtin(b: BuiltIn, root: Path, download: bool):
    """(train dataset, test dataset) or a clear ImageLabError saying what to provide."""
    folder, files = expected_files(b, root)
    try:
        return _open(b, root, True, False), _open(b, root, False, False)
    except RuntimeError:
        pass  # not there (or damaged): try a download, or explain
    hint = (f"put {', '.join(files)} into {folder} (torchvision's own file layout), "
            f"or pass --root with a folder that holds them")
    if not download:
        raise ImageLabError(f"torchvision:{b.name} files not found. To use it offline, {hint}.")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return _open(b, root, True, True), _open(b, root, False, True)
    except Exception as exc:  # URLError (offline), HTTP errors, checksum failures
        raise ImageLabError(
            f"torchvision:{b.name} could not be downloaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no details'}). This machine may be "
            f"offline: {hint}.") from None
    finally:
        socket.setdefaulttimeout(old)


def import_torchvision(writer: DatasetWriter, source: str, root: Path, *, download: bool = True,
                       limit: int | None = None, progress=None) -> None:
    """Import a torchvision dataset's train and test parts into ``writer``.

    The test part keeps the split ``test``; the train part is split by the writer.
    ``limit`` caps the images read from each part; ``progress(done, None, message)`` is
    called every 200 images. Raises ``ImageLabError`` if the files are missing and cannot
    be downloaded.
    """
    b = parse_builtin(source)
    train, test = load_builtin(b, Path(root), download)
    classes = [str(c) for c in getattr(train, "classes", [])] or [str(i) for i in range(10)]
    writer.class_order = classes
    done = 0
    for split, ds in (("train", train), ("test", test)):
        n = len(ds) if limit is None else min(len(ds), limit)
        for i in range(n):
            img, target = ds[i]
            writer.add_array(np.asarray(img), original_name=f"{b.name}/{split}/{i:06d}.png",
                             label=classes[int(target)],
                             split="test" if split == "test" else None)
            done += 1
            if progress and done % 200 == 0:
                progress(done, None, f"torchvision:{b.name}: {done} images")
