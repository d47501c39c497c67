"""Folder source: ImageFolder layout (class sub-folders, optionally under
train/ val/ test/), or a flat folder imported unlabelled.

Layouts, decided from the top-level sub-folders:

- ``train/cat/1.png``, ``val/dog/2.png``: split kept, class from the folder below it;
  images directly in a split folder are unlabelled.
- ``cat/1.png``, ``cat/more/2.png``: class from the top folder, split assigned later.
- files at the top level are unlabelled (in a flat folder, all of them).

Symbolic links and special files are not followed: they are reported, like
everything else that is skipped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

from core.data.decode import MAX_FILE_BYTES
from core.data.ingest import DatasetWriter, SourceItem
from core.errors import ImageLabError

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
IGNORED_DIRS = {"__MACOSX"}


def read_file(path: Path) -> bytes:
    """Read one file for import, refusing files too large to be an image we accept."""
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise ImageLabError(f"file too large ({size / 1e6:.0f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
    with open(path, "rb") as fh:
        return fh.read()


def folder_items(root: Path, writer: DatasetWriter, *, prefix: str = "",
                 label: str | None = None) -> list[SourceItem]:
    """Every file under ``root`` as a ``SourceItem`` with its label and split.

    Entries that cannot be images (links, special files) go to ``writer.skip``.
    ``label`` forces one class for every file (a flat upload into a chosen class).
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageLabError(f"{root} is not a folder")
    entries = _list_dir(root, writer, prefix)
    subdirs = [e for e in entries if e.is_dir()]
    files = [e for e in entries if not e.is_dir()]
    items: list[SourceItem] = []
    split_layout = any(d.name.lower() in SPLIT_NAMES for d in subdirs)
    for f in files:
        items.append(_item(f, root, prefix, label, None))
    for d in subdirs:
        if split_layout and d.name.lower() in SPLIT_NAMES:
            split = SPLIT_NAMES[d.name.lower()]
            for e in _list_dir(d, writer, prefix, root):
                if e.is_dir():
                    for f in _walk_files(e, writer, prefix, root):
                        items.append(_item(f, root, prefix, label or e.name, split))
                else:
                    items.append(_item(e, root, prefix, label, split))
        else:
            for f in _walk_files(d, writer, prefix, root):
                items.append(_item(f, root, prefix, label or d.name, None))
    return items


def import_folder(writer: DatasetWriter, root: Path, *, prefix: str = "",
                  label: str | None = None) -> None:
    items = folder_items(root, writer, prefix=prefix, label=label)
    if not items and not writer.skipped:
        raise ImageLabError(f"{prefix or root} holds no files to import")
    writer.add_items(items, total=len(items))


def _item(path: Path, root: Path, prefix: str, label: str | None, split: str | None) -> SourceItem:
    name = prefix + path.relative_to(root).as_posix()
    return SourceItem(name, lambda p=path: read_file(p), label, split)


def _list_dir(folder: Path, writer: DatasetWriter, prefix: str, root: Path | None = None
              ) -> list[Path]:
    """Regular files and real folders in ``folder``, sorted; the rest is reported."""
    root = root or folder
    out = []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise ImageLabError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    for name in names:
        path = folder / name
        rel = prefix + path.relative_to(root).as_posix()
        try:
            st = os.lstat(path)
        except OSError as exc:
            writer.skip(rel, f"cannot read: {exc.strerror or exc}")
            continue
        if stat.S_ISLNK(st.st_mode):
            writer.skip(rel, "symbolic link (not followed)")
        elif stat.S_ISDIR(st.st_mode):
            if name in IGNORED_DIRS:
                writer.note(f"{rel}/: macOS metadata folder ignored")
            else:
                out.append(path)
        elif stat.S_ISREG(st.st_mode):
            out.append(path)
        else:
            writer.skip(rel, "not a regular file (device, pipe or socket)")
    return out


def _walk_files(folder: Path, writer: DatasetWriter, prefix: str, root: Path) -> Iterator[Path]:
    for e in _list_dir(folder, writer, prefix, root):
        if e.is_dir():
            yield from _walk_files(e, writer, prefix, root)
        else:
            yield e
