"""Checkpoints: plain dicts of state dicts, saved atomically, loaded with weights_only=True.

``save_checkpoint`` serialises to memory, writes a temp file in the same folder, flushes and
fsyncs it, then ``os.replace``s it over the old one: a kill mid-save leaves the previous
checkpoint intact. A full disk raises ``ImageLabError`` and leaves no temp file behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from core.errors import ImageLabError
from core.units import format_size

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` to ``path`` with ``torch.save``, atomically and durably.

    The bytes go to a temporary file in the same folder, are fsynced and renamed over
    ``path``, so a crash leaves the old checkpoint or the new one, never a torn file."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getbuffer()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        with contextlib.suppress(OSError):   # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise ImageLabError(
                f"no space left on the disk while saving checkpoint {path.name} "
                f"({format_size(len(data))} needed in {path.parent}); free some space and "
                "resume the run — the previous checkpoint is intact") from None
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` onto ``map_location``; returns its dict.

    Raises ``ImageLabError`` when the file is missing, torn, not a PyTorch checkpoint, or holds
    pickled code that weights-only loading refuses."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ImageLabError(f"checkpoint {path} does not exist") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError,
            pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        # Not a checkpoint, a torn file, or pickled code that weights_only refuses to run.
        first = _unreadable_reason(exc)
        raise ImageLabError(f"checkpoint {path} cannot be read: it is not a PyTorch checkpoint "
                            f"saved by ImageLab or torch.save ({first})") from None


def _unreadable_reason(exc: Exception) -> str:
    """Why ``torch.load`` could not read a file, in plain words: torch's and the unpickler's
    own texts ("pop from empty list", "101", "Could this error message be improved?") mean
    nothing to a user. Only a refused permission keeps its own text."""
    if isinstance(exc, PermissionError):
        return str(exc).strip() or type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError):     # torch's text advises weights_only=False
        return "not a torch.save file, or one holding Python objects that are never run"
    if isinstance(exc, (RuntimeError, zipfile.BadZipFile, OSError)):   # torch's zip reader
        return "its archive is damaged or incomplete"
    return "its bytes end early or are not a checkpoint's"       # EOF, Index, Key, ValueError
