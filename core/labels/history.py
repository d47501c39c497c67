"""History, undo, revert and label versions.

- ``list_actions``: a dataset's actions, newest first, with their event counts;
- ``label_history``: label events of a dataset, an image or a class;
- ``undo_last_action``: applies the inverse events of the last action that is not
  undone (imports and undos are not undone), as a new ``undo`` action, and marks
  the original ``undone_by``;
- ``labels_at_version`` / ``revert_to_version``: a dataset's labels as they were
  after label event N, and one ``revert`` action that brings them back.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from core.errors import ImageLabError
from core.labels.common import (
    ActionResult,
    LabelConflict,
    class_names_by_id,
    current_user,
    dataset_id,
    label_version,
    live_classes,
    new_action,
)
from core.labels.edits import begin_edit, class_event, commit_staged
from core.store.workspace import Workspace

NOT_UNDOABLE = ("import", "undo")


@dataclass
class ActionInfo:
    """One action (one edit) as listed in the history.

    ``created_at`` is a Unix time in seconds; ``label_events`` and ``other_events`` count
    its label changes and its split, exclusion and class changes; ``undone_by`` is the id
    of the action that undid it, if any.
    """
    id: int
    kind: str
    description: str
    user: str
    created_at: float
    label_events: int
    other_events: int
    undone_by: int | None
    label_version: int | None   # the last label event of this action, if any

    def to_dict(self) -> dict:
        """The action as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass
class LabelEvent:
    """One label change of one image: old and new class names (``None`` = unlabelled), who
    made it and when (Unix seconds), and whether its action has been undone.
    """
    version: int              # the event id: the dataset's label version after it
    action_id: int
    kind: str
    user: str
    created_at: float
    image_id: int
    image: str
    old_label: str | None
    new_label: str | None
    undone: bool

    def to_dict(self) -> dict:
        """The event as a plain dict (JSON-ready)."""
        return asdict(self)


def list_actions(ws: Workspace, dataset: str, *, limit: int = 100) -> list[ActionInfo]:
    """The dataset's newest ``limit`` actions, newest first, with their event counts.

    Raises ``NotFoundError`` for an unknown dataset.
    """
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        rows = conn.execute(
            "SELECT a.*, (SELECT COUNT(*) FROM label_events e WHERE e.action_id = a.id) AS nl, "
            "(SELECT MAX(e.id) FROM label_events e WHERE e.action_id = a.id) AS v, "
            "(SELECT COUNT(*) FROM image_events e WHERE e.action_id = a.id) "
            " + (SELECT COUNT(*) FROM class_events e WHERE e.action_id = a.id) AS no "
            "FROM actions a WHERE a.dataset_id = ? ORDER BY a.id DESC LIMIT ?",
            (ds_id, limit)).fetchall()
    return [ActionInfo(r["id"], r["kind"], r["description"], r["user"], r["created_at"], r["nl"],
                       r["no"], r["undone_by"], r["v"]) for r in rows]


def label_history(ws: Workspace, dataset: str, *, image_id: int | None = None,
                  class_name: str | None = None, limit: int = 200) -> list[LabelEvent]:
    """Label events, newest first: of the dataset, of one image, or touching one class."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        where, params = ["a.dataset_id = ?"], [ds_id]
        if image_id is not None:
            where.append("e.image_id = ?")
            params.append(int(image_id))
        if class_name is not None:
            ids = [cid for cid, n in names.items() if n == class_name]
            if not ids:
                raise ImageLabError(f"unknown class {class_name!r}")
            marks = ",".join("?" * len(ids))
            where.append(f"(e.old_class_id IN ({marks}) OR e.new_class_id IN ({marks}))")
            params += ids + ids
        rows = conn.execute(
            "SELECT e.id, e.action_id, a.kind, a.user, e.created_at, e.image_id, i.original_name, "
            "e.old_class_id, e.new_class_id, a.undone_by FROM label_events e "
            "JOIN actions a ON a.id = e.action_id JOIN images i ON i.id = e.image_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.id DESC LIMIT ?", (*params, limit)).fetchall()
    return [LabelEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], names.get(r[7]), names.get(r[8]),
                       r[9] is not None) for r in rows]


def last_undoable_action(ws: Workspace, dataset: str) -> ActionInfo | None:
    """The action ``undo_last_action`` would undo: the newest one not yet undone that is
    neither an import nor an undo; ``None`` if there is none.
    """
    for a in list_actions(ws, dataset, limit=1_000_000):
        if a.undone_by is None and a.kind not in NOT_UNDOABLE:
            return a
    return None


def undo_last_action(ws: Workspace, dataset: str, *, user: str | None = None,
                     expected_action: int | None = None) -> ActionResult:
    """Undo the dataset's last action that is not undone yet (one new ``undo`` action).

    ``expected_action``: the action the user saw as "last"; if another edit came
    in since, this raises ``LabelConflict`` instead of undoing something else.
    """
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        marks = ",".join("?" * len(NOT_UNDOABLE))
        row = conn.execute(
            f"SELECT id, kind, description FROM actions WHERE dataset_id = ? AND undone_by IS NULL "
            f"AND kind NOT IN ({marks}) ORDER BY id DESC LIMIT 1", (ds_id, *NOT_UNDOABLE)).fetchone()
        if row is None:
            raise ImageLabError(f"nothing to undo in {dataset!r}")
        orig = int(row[0])
        if expected_action is not None and orig != expected_action:
            raise ImageLabError(f"the last action changed since you looked (it is now #{orig}: "
                                f"{row[2]}); nothing was undone, review the history and try again")
        undo = new_action(conn, ds_id, "undo", f"undo #{orig}: {row[2]}", current_user(user))
        _undo_class_events(conn, ds_id, orig, undo, phase="before_labels")
        begin_edit(conn)
        conn.execute("INSERT INTO temp._lab(image_id, expected, new) SELECT image_id, new_class_id, "
                     "old_class_id FROM label_events WHERE action_id = ?", (orig,))
        conn.execute("INSERT INTO temp._img(image_id, field, new) SELECT image_id, field, old_value "
                     "FROM image_events WHERE action_id = ? ORDER BY id DESC", (orig,))
        result = commit_staged(conn, ds_id, kind="undo", description="", user="", action_id=undo)
        _undo_class_events(conn, ds_id, orig, undo, phase="after_labels")
        _check_deleted_targets(conn, ds_id, undo)
        conn.execute("UPDATE actions SET undone_by = ? WHERE id = ?", (undo, orig))
        return ActionResult(undo, "undo", result.changed, result.other_changes,
                            label_version(conn, ds_id))


def _undo_class_events(conn, ds_id: int, orig: int, undo: int, *, phase: str) -> None:
    """Inverse class events: renames and restores before the labels move back,
    deletions (of created or restored classes) after, once no image uses them."""
    now = time.time()
    for ev in conn.execute("SELECT class_id, field, old_value, new_value FROM class_events "
                           "WHERE action_id = ? ORDER BY id DESC", (orig,)).fetchall():
        cid, field, old, new = ev
        deletes = field == "created" or (field == "deleted_at" and new is None)
        if deletes != (phase == "after_labels"):
            continue
        if deletes:
            used = conn.execute("SELECT COUNT(*) FROM images WHERE class_id = ?", (cid,)).fetchone()[0]
            name = conn.execute("SELECT name FROM classes WHERE id = ?", (cid,)).fetchone()[0]
            if used:
                raise ImageLabError(f"cannot undo: class {name!r} would be removed but "
                                    f"{used} images use it now")
            conn.execute("UPDATE classes SET deleted_at = ? WHERE id = ?", (now, cid))
            class_event(conn, undo, cid, "deleted_at", None, repr(now))
        elif field == "deleted_at":
            _restore_class(conn, ds_id, cid)
            class_event(conn, undo, cid, "deleted_at", new, None)
        else:
            if field == "name" and old in live_classes(conn, ds_id):
                raise ImageLabError(f"cannot undo the rename: a class named {old!r} exists again")
            conn.execute(f"UPDATE classes SET {field} = ? WHERE id = ?", (old, cid))
            class_event(conn, undo, cid, field, new, old)


def _restore_class(conn, ds_id: int, cid: int) -> None:
    name = conn.execute("SELECT name FROM classes WHERE id = ?", (cid,)).fetchone()[0]
    if name in live_classes(conn, ds_id):
        raise ImageLabError(f"cannot bring back class {name!r}: another class has that name now")
    conn.execute("UPDATE classes SET deleted_at = NULL WHERE id = ?", (cid,))


def _check_deleted_targets(conn, ds_id: int, action: int) -> None:
    """Images must not end up in a deleted class: bring such classes back, recorded."""
    for (cid,) in conn.execute(
            "SELECT DISTINCT c.id FROM label_events e JOIN classes c ON c.id = e.new_class_id "
            "WHERE e.action_id = ? AND c.deleted_at IS NOT NULL", (action,)).fetchall():
        old = conn.execute("SELECT deleted_at FROM classes WHERE id = ?", (cid,)).fetchone()[0]
        _restore_class(conn, ds_id, cid)
        class_event(conn, action, cid, "deleted_at", repr(old), None)


def _labels_at_version_ids(conn, ds_id: int, version: int) -> dict[int, int | None]:
    rows = conn.execute(
        "SELECT e.image_id, e.new_class_id FROM label_events e JOIN ("
        " SELECT e2.image_id, MAX(e2.id) AS m FROM label_events e2 JOIN actions a ON a.id = e2.action_id"
        " WHERE a.dataset_id = ? AND e2.id <= ? GROUP BY e2.image_id) t ON e.id = t.m",
        (ds_id, version)).fetchall()
    return {int(r[0]): (None if r[1] is None else int(r[1])) for r in rows}


def labels_at_version(ws: Workspace, dataset: str, version: int) -> dict[int, str | None]:
    """{image id: class name} as of label version ``version`` (the id of a label event).

    Images without any label event up to then map to ``None`` (unlabelled, or
    not yet in the dataset). This is how a training run's result is traced back
    to the labels it was trained on (runs store ``label_version``).
    """
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        _check_version(conn, ds_id, version)
        names = class_names_by_id(conn, ds_id)
        at = _labels_at_version_ids(conn, ds_id, version)
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM images WHERE dataset_id = ?", (ds_id,))]
    return {i: (names[at[i]] if at.get(i) is not None else None) for i in ids}


def revert_to_version(ws: Workspace, dataset: str, version: int, *,
                      user: str | None = None) -> ActionResult:
    """Bring every label back to how it was at ``version``, as one ``revert`` action.

    Images imported after that version keep their labels: they were not in the
    dataset then. Classes deleted since are brought back where needed.
    """
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        _check_version(conn, ds_id, version)
        action = new_action(conn, ds_id, "revert", f"revert labels to version {version}",
                            current_user(user))
        begin_edit(conn)
        # Target: the last event <= version; images whose first event is a later
        # import are left alone; images with events only after it go unlabelled.
        conn.execute(
            "INSERT INTO temp._lab(image_id, expected, new) "
            "SELECT i.id, i.class_id, t.new FROM images i "
            "JOIN (SELECT e.image_id, (SELECT e3.new_class_id FROM label_events e3 "
            "       WHERE e3.image_id = e.image_id AND e3.id <= ? ORDER BY e3.id DESC LIMIT 1) AS new,"
            "      MIN(e.id) AS first FROM label_events e JOIN actions a ON a.id = e.action_id "
            "      WHERE a.dataset_id = ? GROUP BY e.image_id) t ON t.image_id = i.id "
            "JOIN label_events f ON f.id = t.first JOIN actions fa ON fa.id = f.action_id "
            "WHERE i.dataset_id = ? AND NOT (f.id > ? AND fa.kind = 'import') "
            "AND i.class_id IS NOT t.new", (version, ds_id, ds_id, version))
        result = commit_staged(conn, ds_id, kind="revert", description="", user="",
                               action_id=action, check_expected=False)
        _check_deleted_targets(conn, ds_id, action)
        if result.changed == 0:
            conn.execute("DELETE FROM actions WHERE id = ?", (action,))
            return ActionResult(None, "revert", 0, 0, label_version(conn, ds_id))
        return ActionResult(action, "revert", result.changed, 0, label_version(conn, ds_id))


def _check_version(conn, ds_id: int, version: int) -> None:
    current = label_version(conn, ds_id)
    if version < 0 or version > current:
        raise ImageLabError(f"label version {version} does not exist; the current version is {current}")


__all__ = ["ActionInfo", "LabelEvent", "LabelConflict", "list_actions", "label_history",
           "undo_last_action", "labels_at_version", "revert_to_version", "last_undoable_action"]
