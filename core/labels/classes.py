"""Classes of a dataset: list, add, rename, describe, merge and delete.

Each operation is one undoable action. Classes are soft-deleted (``deleted_at``)
so the history keeps their names; merge and delete move their images in the
same action (label events), so undo brings back the class and its images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from core.data.class_names import class_name_problem, normalise_class_name
from core.errors import ImageLabError
from core.labels.common import ActionResult, current_user, dataset_id, label_version, live_classes, new_action
from core.labels.edits import begin_edit, class_event, commit_staged
from core.store.workspace import Workspace


@dataclass
class ClassInfo:
    """One live class: id, name, description, display position, and its image counts
    (``images`` in all, then per split).
    """
    id: int
    name: str
    description: str
    position: int
    images: int
    train: int
    val: int
    test: int

    def to_dict(self) -> dict:
        """The class as a plain dict (JSON-ready)."""
        return asdict(self)


def list_classes(ws: Workspace, dataset: str) -> list[ClassInfo]:
    """Live classes in display order, with image counts per split."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        rows = conn.execute(
            "SELECT c.id, c.name, c.description, c.position, "
            "COUNT(i.id) AS n, SUM(i.split = 'train') AS tr, SUM(i.split = 'val') AS va, "
            "SUM(i.split = 'test') AS te FROM classes c LEFT JOIN images i ON i.class_id = c.id "
            "WHERE c.dataset_id = ? AND c.deleted_at IS NULL GROUP BY c.id "
            "ORDER BY c.position, c.name", (ds_id,)).fetchall()
    return [ClassInfo(r[0], r[1], r[2], r[3], r[4], r[5] or 0, r[6] or 0, r[7] or 0) for r in rows]


def class_descriptions(ws: Workspace, dataset: str) -> dict[str, str]:
    """Each live class's description by class name (empty string when none was written)."""
    return {c.name: c.description for c in list_classes(ws, dataset)}


def validate_class_name(name: str) -> str:
    """``name`` NFC-normalised and stripped of surrounding space, if it is a valid class
    name (``core.data.class_names``: the same rule as names that come with the data).

    Raises ``ImageLabError`` if it is blank, over ``MAX_NAME`` characters, or holds
    control characters.
    """
    name = normalise_class_name(name or "")
    problem = class_name_problem(name)
    if problem:
        raise ImageLabError(f"{problem}; choose another name")
    return name


def add_class(ws: Workspace, dataset: str, name: str, description: str = "", *,
              user: str | None = None) -> ActionResult:
    """Add an empty class at the end of the display order, as one undoable action.

    Raises ``ImageLabError`` for an invalid name or one already in use, ``NotFoundError``
    for an unknown dataset.
    """
    name = validate_class_name(name)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        if name in live_classes(conn, ds_id):
            raise ImageLabError(f"class {name!r} already exists")
        pos = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM classes WHERE dataset_id = ?",
                           (ds_id,)).fetchone()[0]
        cid = conn.execute("INSERT INTO classes(dataset_id, name, description, position) "
                           "VALUES (?, ?, ?, ?)", (ds_id, name, description.strip(), pos)).lastrowid
        action = new_action(conn, ds_id, "add_class", f"add class {name!r}", current_user(user))
        class_event(conn, action, cid, "created", None, name)
        return ActionResult(action, "add_class", 0, 1, label_version(conn, ds_id))


def rename_class(ws: Workspace, dataset: str, old: str, new: str, *,
                 user: str | None = None) -> ActionResult:
    """Rename class ``old`` to ``new``, as one undoable action (nothing happens if equal).

    Raises ``ImageLabError`` if ``old`` is unknown or ``new`` is invalid or taken (merge
    the two classes instead).
    """
    new = validate_class_name(new)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        classes = live_classes(conn, ds_id)
        cid = _class(classes, old)
        if new == old:
            return ActionResult(None, "rename_class", 0, 0, label_version(conn, ds_id))
        if new in classes:
            raise ImageLabError(f"class {new!r} already exists; to join the two, merge {old!r} into it")
        conn.execute("UPDATE classes SET name = ? WHERE id = ?", (new, cid))
        action = new_action(conn, ds_id, "rename_class", f"rename class {old!r} to {new!r}",
                            current_user(user))
        class_event(conn, action, cid, "name", old, new)
        return ActionResult(action, "rename_class", 0, 1, label_version(conn, ds_id))


def set_description(ws: Workspace, dataset: str, name: str, description: str, *,
                    user: str | None = None) -> ActionResult:
    """Set the description of class ``name`` (stripped), as one undoable action.

    Nothing is recorded if it is unchanged. Raises ``ImageLabError`` for an unknown class.
    """
    description = (description or "").strip()
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        cid = _class(live_classes(conn, ds_id), name)
        old = conn.execute("SELECT description FROM classes WHERE id = ?", (cid,)).fetchone()[0]
        if old == description:
            return ActionResult(None, "describe_class", 0, 0, label_version(conn, ds_id))
        conn.execute("UPDATE classes SET description = ? WHERE id = ?", (description, cid))
        action = new_action(conn, ds_id, "describe_class", f"describe class {name!r}",
                            current_user(user))
        class_event(conn, action, cid, "description", old, description)
        return ActionResult(action, "describe_class", 0, 1, label_version(conn, ds_id))


def merge_classes(ws: Workspace, dataset: str, source: str, target: str, *,
                  user: str | None = None) -> ActionResult:
    """Move every image of ``source`` to ``target`` and delete ``source`` (one action)."""
    if source == target:
        raise ImageLabError("choose two different classes to merge")
    return _remove_class(ws, dataset, source, target, kind="merge_class",
                         description=f"merge class {source!r} into {target!r}", user=user)


def delete_class(ws: Workspace, dataset: str, name: str, *, reassign_to: str | None = None,
                 user: str | None = None) -> ActionResult:
    """Delete a class; its images go to ``reassign_to``, or become unlabelled."""
    if reassign_to == name:
        raise ImageLabError("a class cannot be reassigned to itself")
    where = f"moving its images to {reassign_to!r}" if reassign_to else "unlabelling its images"
    return _remove_class(ws, dataset, name, reassign_to, kind="delete_class",
                         description=f"delete class {name!r}, {where}", user=user)


def _remove_class(ws, dataset, name, target, *, kind, description, user) -> ActionResult:
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        classes = live_classes(conn, ds_id)
        cid = _class(classes, name)
        tid = _class(classes, target) if target is not None else None
        action = new_action(conn, ds_id, kind, description, current_user(user))
        begin_edit(conn)
        conn.execute("INSERT INTO temp._lab(image_id, expected, new) "
                     "SELECT id, class_id, ? FROM images WHERE class_id = ?", (tid, cid))
        result = commit_staged(conn, ds_id, kind=kind, description=description, user="",
                               action_id=action)
        now = time.time()
        conn.execute("UPDATE classes SET deleted_at = ? WHERE id = ?", (now, cid))
        class_event(conn, action, cid, "deleted_at", None, repr(now))
        return ActionResult(action, kind, result.changed, 1, label_version(conn, ds_id))


def _class(classes: dict[str, int], name: str) -> int:
    if name not in classes:
        raise ImageLabError(f"unknown class {name!r}; classes: {', '.join(classes) or 'none'}")
    return classes[name]
