"""Reading local files for import: what a path may be, and the one size check before any
bytes are read.

Below ``ingest``, ``prepare`` and every source, so each can read files without
importing a data source.

Only regular files are read, and a source may only be a regular file or a folder:
a device (``/dev/zero``, ``/dev/urandom``), a FIFO or a socket is refused before it is
opened, since reading one may never end. ``read_file`` checks the kind again on the
open descriptor (the path may change between the check and the open), opens without
blocking (opening a FIFO with no writer would wait forever), and never reads more
than the limit plus one byte, whatever size the file claims.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from core.data.decode import MAX_FILE_BYTES
from core.errors import ImageLabError
from core.units import format_size

_NOT_REGULAR = "is not a regular file (a device, pipe or socket): refused, it may never end"


def shown_name(name: str) -> str:
    """``name`` as valid text for the report, the database and the terminal: bytes of a file
    name that are not UTF-8 (which Python keeps as lone surrogates) become U+FFFD."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def kind_refusal(mode: int) -> str | None:
    """Why a file of ``st_mode`` ``mode`` may not be read (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return _NOT_REGULAR


def _stat(path: Path, what: str) -> os.stat_result:
    """``os.stat(path)`` (links followed); ``ImageLabError`` naming ``what`` if it fails."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise ImageLabError(f"{what} {path} not found") from None
    except OSError as exc:
        raise ImageLabError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def check_regular_file(path: Path, what: str = "file") -> os.stat_result:
    """The ``os.stat`` of ``path`` (links followed) if it is a regular file.

    Raises ``ImageLabError`` for a folder, a device, a FIFO or a socket, and for a
    path that cannot be read (``what`` names the file in the message).
    """
    st = _stat(path, what)
    reason = kind_refusal(st.st_mode)
    if reason:
        raise ImageLabError(f"{what} {path} {reason}")
    return st


def check_file_or_folder(path: Path) -> os.stat_result:
    """The ``os.stat`` of a source ``path`` (links followed) if it is a regular file or a
    folder; raises ``ImageLabError`` for a device, a FIFO or a socket (and if unreadable)."""
    st = _stat(path, "source")
    reason = None if stat.S_ISDIR(st.st_mode) else kind_refusal(st.st_mode)
    if reason:
        raise ImageLabError(f"source {path} {reason}")
    return st


def read_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read one regular file for import, refusing other kinds and files over ``max_bytes``."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageLabError(f"{Path(path).name} {kind_refusal(st.st_mode)}")
    if st.st_size > max_bytes:
        raise ImageLabError(f"file too large ({format_size(st.st_size)} > {format_size(max_bytes)})")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with open(fd, "rb", closefd=True) as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):   # swapped for something else after the check above
            raise ImageLabError(f"{Path(path).name} {kind_refusal(mode)}")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageLabError(f"file too large (over {format_size(max_bytes)})")
    return data
