"""Shared pieces for label editing: the conflict error, the user name, class lookups."""

from __future__ import annotations

import getpass
import os
import sqlite3
import time
from dataclasses import asdict, dataclass

from core.errors import ImageLabError, NotFoundError

USER_ENV = "IMAGELAB_USER"


class LabelConflict(ImageLabError):
    """An edit expected a label that is no longer there; nothing was written.

    ``conflicts`` lists ``(image_id, expected, actual)`` with label names
    (``None`` = unlabelled).
    """

    def __init__(self, conflicts: list[tuple[int, str | None, str | None]], names: dict[int, str] | None = None):
        self.conflicts = conflicts
        first = conflicts[0]
        who = (names or {}).get(first[0])
        what = f"image {first[0]}" + (f" ({who})" if who else "")
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        super().__init__(
            f"label conflict: {what} is now labelled {_show(first[2])}, not {_show(first[1])} "
            f"as this edit expected{more}; someone else changed it. Nothing was saved: "
            "reload and try again.")


def _show(label: str | None) -> str:
    return "(unlabelled)" if label is None else repr(label)


def current_user(user: str | None = None) -> str:
    """The name recorded on actions: explicit, else $IMAGELAB_USER, else the OS user."""
    if user:
        return user
    env = os.environ.get(USER_ENV)
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


@dataclass
class ActionResult:
    """What one committed edit did."""

    action_id: int | None   # None when nothing needed to change
    kind: str
    changed: int            # label changes written
    other_changes: int      # split / exclusion changes written
    label_version: int      # the dataset's label version after the edit

    def to_dict(self) -> dict:
        """The result as a plain dict (JSON-ready)."""
        return asdict(self)


def dataset_id(conn: sqlite3.Connection, name: str) -> int:
    """The id of the dataset called ``name``, read on ``conn`` (inside the caller's transaction).

    Raises ``NotFoundError`` naming the known datasets if there is none.
    """
    row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY name")]
        hint = f"; known datasets: {', '.join(known)}" if known else "; the workspace has no datasets yet"
        raise NotFoundError(f"unknown dataset {name!r}{hint}")
    return int(row[0])


def live_classes(conn: sqlite3.Connection, ds_id: int) -> dict[str, int]:
    """{name: id} of the dataset's classes that are not deleted."""
    return {r[1]: int(r[0]) for r in conn.execute(
        "SELECT id, name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
        "ORDER BY position, name", (ds_id,))}


def class_names_by_id(conn: sqlite3.Connection, ds_id: int) -> dict[int, str]:
    """{id: name} of every class the dataset ever had (deleted ones too)."""
    return {int(r[0]): r[1] for r in conn.execute(
        "SELECT id, name FROM classes WHERE dataset_id = ?", (ds_id,))}


def class_id_for(conn: sqlite3.Connection, ds_id: int, label: str | None, *,
                 classes: dict[str, int] | None = None) -> int | None:
    """The id of a live class by name (``None`` stays ``None``); unknown names are an error."""
    if label is None:
        return None
    classes = classes if classes is not None else live_classes(conn, ds_id)
    if label not in classes:
        known = ", ".join(classes) or "none"
        raise ImageLabError(f"unknown class {label!r}; classes: {known}")
    return classes[label]


def new_action(conn: sqlite3.Connection, ds_id: int, kind: str, description: str, user: str) -> int:
    """Record a new action (one undoable edit) of ``kind`` on dataset ``ds_id``; returns its id."""
    cur = conn.execute(
        "INSERT INTO actions(dataset_id, kind, description, user, created_at) VALUES (?, ?, ?, ?, ?)",
        (ds_id, kind, description, user, time.time()))
    return int(cur.lastrowid)


def label_version(conn: sqlite3.Connection, ds_id: int) -> int:
    """The id of the dataset's last label event (0 when it has none): it grows with every
    label edit, so a changed version means the labels changed.
    """
    row = conn.execute(
        "SELECT MAX(e.id) FROM label_events e JOIN actions a ON a.id = e.action_id "
        "WHERE a.dataset_id = ?", (ds_id,)).fetchone()
    return int(row[0] or 0)
