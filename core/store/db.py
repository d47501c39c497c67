"""SQLite connections tuned for a workspace shared by the app, the CLI and trainers.

- WAL journal, so readers (the dashboard) never block the writer (a trainer).
- ``synchronous=FULL``: a committed transaction survives ``kill -9`` and power loss.
- ``busy_timeout`` so concurrent writers wait instead of failing.
- ``transaction()`` opens ``BEGIN IMMEDIATE``: one transaction per user action.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

BUSY_TIMEOUT_MS = 30_000   # writers queue behind a long write instead of failing


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the workspace database with the project's pragmas applied."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
