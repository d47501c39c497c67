"""The one write path for labels, splits, exclusions and classes.

Every edit is one action: a row in ``actions`` plus its events, written in the
caller's ``BEGIN IMMEDIATE`` transaction, so it lands whole or not at all even
if the process is killed mid-way.

- ``label_events``: image, old class, new class (the id is the label version);
- ``image_events``: image, field (``split`` or ``excluded``), old and new value;
- ``class_events``: class, field (``created``, ``name``, ``description``,
  ``deleted_at``), old and new value.

Bulk edits are staged in a temporary table and applied with set-based SQL
(``INSERT … SELECT`` and ``UPDATE … FROM``), so 10,000 changes cost a few
statements, not 10,000 round trips. Label changes state the label they expect
to replace; any difference raises ``LabelConflict`` before anything is written.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Iterable

from core.errors import ImageLabError
from core.labels.common import ActionResult, LabelConflict, class_names_by_id, label_version, new_action

SPLITS = ("train", "val", "test")


def _stage(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _lab "
                 "(image_id INTEGER PRIMARY KEY, expected INTEGER, new INTEGER)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _img "
                 "(image_id INTEGER, field TEXT, new TEXT, PRIMARY KEY (image_id, field))")
    conn.execute("DELETE FROM temp._lab")
    conn.execute("DELETE FROM temp._img")


def stage_labels(conn: sqlite3.Connection, rows: Iterable[tuple[int, int | None, int | None]]) -> None:
    """Stage ``(image_id, expected class id, new class id)``; call after ``begin_edit``."""
    try:
        conn.executemany("INSERT INTO temp._lab(image_id, expected, new) VALUES (?, ?, ?)", rows)
    except sqlite3.IntegrityError:
        raise ImageLabError("the same image appears twice in one edit") from None


def stage_image_field(conn: sqlite3.Connection, field: str, rows: Iterable[tuple[int, str]]) -> None:
    """Stage ``(image_id, new value)`` changes of ``field`` (``split`` or ``excluded``, the
    value as text); call after ``begin_edit``. Raises ``ImageLabError`` if an image appears
    twice, ``ValueError`` for any other field.
    """
    if field not in ("split", "excluded"):
        raise ValueError(field)
    try:
        conn.executemany(f"INSERT INTO temp._img(image_id, field, new) VALUES (?, '{field}', ?)", rows)
    except sqlite3.IntegrityError:
        raise ImageLabError("the same image appears twice in one edit") from None


def begin_edit(conn: sqlite3.Connection) -> None:
    """Prepare the staging tables (inside the caller's transaction)."""
    _stage(conn)


def commit_staged(conn: sqlite3.Connection, ds_id: int, *, kind: str, description: str, user: str,
                  check_expected: bool = True, action_id: int | None = None) -> ActionResult:
    """Check and apply what was staged as one action; return what it did.

    Raises ``LabelConflict`` (writing nothing) when an image's current class
    differs from the staged expectation, and ``ImageLabError`` for images that
    are not in the dataset.
    """
    missing = conn.execute(
        "SELECT t.image_id FROM (SELECT image_id FROM temp._lab UNION SELECT image_id FROM temp._img) t "
        "LEFT JOIN images i ON i.id = t.image_id AND i.dataset_id = ? WHERE i.id IS NULL LIMIT 5",
        (ds_id,)).fetchall()
    if missing:
        raise ImageLabError("these images are not in the dataset: "
                            + ", ".join(str(r[0]) for r in missing))
    if check_expected:
        rows = conn.execute(
            "SELECT t.image_id, t.expected, i.class_id FROM temp._lab t JOIN images i "
            "ON i.id = t.image_id WHERE i.class_id IS NOT t.expected ORDER BY t.image_id").fetchall()
        if rows:
            names = class_names_by_id(conn, ds_id)
            img_names = {r[0]: r[1] for r in conn.execute(
                "SELECT id, original_name FROM images WHERE id = ?", (rows[0][0],))}
            names[-1] = "(a class that no longer exists)"
            raise LabelConflict([(r[0], names.get(r[1]), names.get(r[2])) for r in rows], img_names)
    # Changes that change nothing are dropped.
    conn.execute("DELETE FROM temp._lab WHERE image_id IN (SELECT t.image_id FROM temp._lab t "
                 "JOIN images i ON i.id = t.image_id WHERE i.class_id IS t.new)")
    conn.execute(
        "DELETE FROM temp._img WHERE rowid IN (SELECT t.rowid FROM temp._img t JOIN images i "
        "ON i.id = t.image_id WHERE (t.field = 'split' AND i.split = t.new) "
        "OR (t.field = 'excluded' AND CAST(i.excluded AS TEXT) = t.new))")
    n_labels = conn.execute("SELECT COUNT(*) FROM temp._lab").fetchone()[0]
    n_other = conn.execute("SELECT COUNT(*) FROM temp._img").fetchone()[0]
    if n_labels == 0 and n_other == 0 and action_id is None:
        return ActionResult(None, kind, 0, 0, label_version(conn, ds_id))
    now = time.time()
    if action_id is None:
        action_id = new_action(conn, ds_id, kind, description, user)
    if n_labels:
        conn.execute(
            "INSERT INTO label_events(action_id, image_id, old_class_id, new_class_id, created_at) "
            "SELECT ?, t.image_id, i.class_id, t.new, ? FROM temp._lab t JOIN images i "
            "ON i.id = t.image_id ORDER BY t.image_id", (action_id, now))
        conn.execute("UPDATE images SET class_id = t.new FROM temp._lab t WHERE t.image_id = images.id")
    if n_other:
        conn.execute(
            "INSERT INTO image_events(action_id, image_id, field, old_value, new_value, created_at) "
            "SELECT ?, t.image_id, t.field, CASE t.field WHEN 'split' THEN i.split "
            "ELSE CAST(i.excluded AS TEXT) END, t.new, ? FROM temp._img t JOIN images i "
            "ON i.id = t.image_id ORDER BY t.image_id, t.field", (action_id, now))
        conn.execute("UPDATE images SET split = t.new FROM temp._img t "
                     "WHERE t.image_id = images.id AND t.field = 'split'")
        conn.execute("UPDATE images SET excluded = CAST(t.new AS INTEGER) FROM temp._img t "
                     "WHERE t.image_id = images.id AND t.field = 'excluded'")
    conn.execute("DELETE FROM temp._lab")
    conn.execute("DELETE FROM temp._img")
    return ActionResult(action_id, kind, int(n_labels), int(n_other), label_version(conn, ds_id))


def class_event(conn: sqlite3.Connection, action_id: int, class_id: int, field: str,
                old: str | None, new: str | None) -> None:
    """Record one class change (the caller has applied it)."""
    conn.execute(
        "INSERT INTO class_events(action_id, class_id, field, old_value, new_value, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)", (action_id, class_id, field, old, new, time.time()))


def check_split(split: str) -> str:
    """Return ``split`` if it is train, val or test; raise ``ImageLabError`` otherwise."""
    if split not in SPLITS:
        raise ImageLabError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split
