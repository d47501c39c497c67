"""The workspace folder: where everything a user makes lives.

Layout (root is ``$IMAGELAB_HOME``, default ``./workspace``)::

    imagelab.db                  SQLite: datasets, images, classes, label events, runs, jobs
    images/<dataset>/...         image files, as written by the importers
    thumbs/<sha[:2]>/<sha>.jpg   small JPEG thumbnails for galleries
    cache/<dataset>/<size>/      decoded uint8 tensors (N×C×H×W .npy) + image ids
    runs/<run_id>/               config, status, metrics, logs, checkpoints
    tmp/                         scratch space for extraction and atomic writes

The database is the source of truth for labels and status; the files are the
source of truth for pixels and weights.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import WorkspaceError
from core.store.db import connect, transaction
from core.store.migrations import migrate

ENV_VAR = "IMAGELAB_HOME"
DEFAULT_HOME = "workspace"
DB_NAME = "imagelab.db"
SUBDIRS = ("images", "thumbs", "cache", "runs", "tmp")


def default_home() -> Path:
    """The workspace root when none is given: ``$IMAGELAB_HOME``, else ``./workspace`` (``~`` expanded)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_HOME).expanduser()


@dataclass(frozen=True)
class Workspace:
    """A ready-to-use workspace: folders exist and the schema is current."""

    root: Path

    @property
    def db_path(self) -> Path:
        """``imagelab.db``, the SQLite database (datasets, images, labels, runs, jobs)."""
        return self.root / DB_NAME

    @property
    def images_dir(self) -> Path:
        """``images/``: the stored original image files, one folder per import batch."""
        return self.root / "images"

    @property
    def thumbs_dir(self) -> Path:
        """``thumbs/``: JPEG thumbnails keyed by content hash."""
        return self.root / "thumbs"

    @property
    def cache_dir(self) -> Path:
        """``cache/``: decoded-pixel tensor caches (see ``dataset_cache_dir``)."""
        return self.root / "cache"

    def dataset_cache_dir(self, dataset_id: int) -> Path:
        """The folder of one dataset's tensor caches (one subfolder per size)."""
        return self.cache_dir / str(dataset_id)

    @property
    def runs_dir(self) -> Path:
        """``runs/``: one folder per training run (see ``core.store.run_paths``)."""
        return self.root / "runs"

    @property
    def tmp_dir(self) -> Path:
        """``tmp/``: scratch space for extraction and atomic writes."""
        return self.root / "tmp"

    def connect(self) -> sqlite3.Connection:
        """A new SQLite connection to the workspace database (pragmas set); the caller closes it."""
        return connect(self.db_path)

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection closed on exit; use ``transaction(conn)`` for writes."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction on a fresh connection."""
        with self.db() as conn, transaction(conn):
            yield conn

    def resolve(self, relative: str | os.PathLike) -> Path:
        """Turn a workspace-relative path into an absolute one, refusing escapes."""
        path = (self.root / relative).resolve()
        root = self.root.resolve()
        if path != root and root not in path.parents:
            raise WorkspaceError(f"path {relative!s} points outside the workspace")
        return path


def open_workspace(root: str | os.PathLike | None = None) -> Workspace:
    """Open (creating if needed) the workspace at ``root`` or ``$IMAGELAB_HOME``.

    Raises ``WorkspaceError`` with a clear message when the folder cannot be
    created or written.
    """
    root_path = Path(root).expanduser() if root is not None else default_home()
    root_path = root_path.absolute()
    if root_path.exists() and not root_path.is_dir():
        raise WorkspaceError(f"workspace {root_path} exists but is not a folder "
                             f"(set {ENV_VAR} to a folder you can write)")
    try:
        root_path.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root_path / sub).mkdir(exist_ok=True)
        _check_writable(root_path)
    except PermissionError as exc:
        raise WorkspaceError(f"workspace {root_path} is not writable: {exc.strerror or exc} "
                             f"(set {ENV_VAR} to a folder you can write)") from None
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace {root_path}: {exc.strerror or exc} "
                             f"(set {ENV_VAR} to a folder you can write)") from None
    ws = Workspace(root_path)
    try:
        with ws.db() as conn:
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(f"workspace database {ws.db_path} cannot be opened: {exc}") from None
    return ws


def _check_writable(root: Path) -> None:
    # os.access lies for root and on some mounts: really write a file.
    fd, name = tempfile.mkstemp(prefix=".write-check-", dir=root)
    os.close(fd)
    os.unlink(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-to-temp, fsync, rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` for text, encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
