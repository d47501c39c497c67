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
from pathlib import Path
from typing import Iterator

from core.data.files import read_file, shown_name
from core.data.import_reading import SourceItem
from core.data.ingest import DatasetWriter
from core.errors import ImageLabError

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
IGNORED_DIRS = {"__MACOSX"}


def folder_items(root: Path, writer: DatasetWriter, *, prefix: str = "",
                 label: str | None = None) -> list[SourceItem]:
    """Every file under ``root`` as a ``SourceItem`` with its label and split.

    Entries that cannot be images (links, special files) go to ``writer.skip``.
    ``label`` forces one class for every file (a flat upload into a chosen class).
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageLabError(f"{root} is not a folder")
    entries = _list_dir(root, writer, prefix, top=True)
    items: list[SourceItem] = []
    split_layout = any(is_dir and d.name.lower() in SPLIT_NAMES for d, _, is_dir in entries)
    for f, rel, is_dir in entries:
        if not is_dir:
            items.append(_item(f, rel, label, None))
    for d, rel, is_dir in entries:
        if not is_dir:
            continue
        if split_layout and d.name.lower() in SPLIT_NAMES:
            split = SPLIT_NAMES[d.name.lower()]
            for e, e_rel, e_is_dir in _list_dir(d, writer, rel + "/"):
                if e_is_dir:
                    for f, f_rel in _walk_files(e, writer, e_rel + "/"):
                        items.append(_item(f, f_rel, label or e.name, split))
                else:
                    items.append(_item(e, e_rel, label, split))
        else:
            for f, f_rel in _walk_files(d, writer, rel + "/"):
                items.append(_item(f, f_rel, label or d.name, None))
    return items


def import_folder(writer: DatasetWriter, root: Path, *, prefix: str = "",
                  label: str | None = None) -> None:
    """Hand every file under ``root`` to ``writer`` (see ``folder_items`` for the layouts).

    Raises ``ImageLabError`` if the folder holds no files at all.
    """
    items = folder_items(root, writer, prefix=prefix, label=label)
    if not items and not writer.skipped:
        raise ImageLabError(f"{prefix or root} holds no files to import")
    writer.add_items(items)


def _item(path: Path, name: str, label: str | None, split: str | None) -> SourceItem:
    return SourceItem(name, lambda p=path: read_file(p), label, split, path=path)


def _list_dir(folder: Path, writer: DatasetWriter, base: str,
              top: bool = False) -> list[tuple[Path, str, bool]]:
    """(path, name for the report, is a folder) of the regular files and real folders in
    ``folder``, sorted by name; ``base`` prefixes the names. The rest is reported.

    A sub-folder that cannot be listed (no permission, a path too long) is one line of
    the report; only the ``top`` folder of the source raises ``ImageLabError``.
    ``os.scandir`` gives each entry's type from the directory listing itself, so a
    folder of 10,000 files costs no system call per file.
    """
    out = []
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if top:
            raise ImageLabError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
        writer.skip(base, f"cannot read this folder: {exc.strerror or exc} (its files were "
                          "not imported)")
        return []
    for entry in entries:
        rel = base + shown_name(entry.name)     # names that are not UTF-8 shown with U+FFFD
        try:
            if entry.is_symlink():
                writer.skip(rel, "symbolic link (not followed)")
            elif entry.is_dir(follow_symlinks=False):
                if entry.name in IGNORED_DIRS:
                    writer.note(f"{rel}/: macOS metadata folder ignored")
                else:
                    out.append((folder / entry.name, rel, True))
            elif entry.is_file(follow_symlinks=False):
                out.append((folder / entry.name, rel, False))
            else:
                writer.skip(rel, "not a regular file (device, pipe or socket)")
        except OSError as exc:
            writer.skip(rel, f"cannot read: {exc.strerror or exc}")
    return out


def _walk_files(folder: Path, writer: DatasetWriter, base: str) -> Iterator[tuple[Path, str]]:
    """(path, name for the report) of every file under ``folder``, depth first in name
    order; a stack, not recursion, so a tree thousands of folders deep is no error."""
    stack = [iter(_list_dir(folder, writer, base))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry[2]:
            stack.append(iter(_list_dir(entry[0], writer, entry[1] + "/")))
        else:
            yield entry[0], entry[1]


def unwrap_single_folder(root: Path) -> Path:
    """The folder below ``root`` that holds the layout: descend through single wrapping
    folders (an extracted ``data.zip`` → ``data/cat/...``), never into a split folder."""
    while True:
        entries = [e for e in root.iterdir() if e.name not in IGNORED_DIRS]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
            return root
        only = entries[0]
        if only.name.lower() in SPLIT_NAMES or not any(e.is_dir() for e in only.iterdir()):
            return root
        root = only
