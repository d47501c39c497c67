"""Relabel images one at a time or in bulk, move them between splits, exclude them.

Every function states the labels it expects to replace (by class name,
``None`` = unlabelled) and commits one action, or raises ``LabelConflict``
and writes nothing.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from core.labels.common import ActionResult, class_id_for, current_user, dataset_id, live_classes
from core.labels.edits import begin_edit, check_split, commit_staged, stage_image_field, stage_labels
from core.store.workspace import Workspace


def relabel(ws: Workspace, dataset: str, changes: Iterable[tuple[int, str | None, str | None]], *,
            user: str | None = None, kind: str | None = None,
            description: str | None = None) -> ActionResult:
    """Apply ``(image_id, expected label, new label)`` changes as one action."""
    changes = list(changes)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        classes = live_classes(conn, ds_id)
        rows = [(int(i), _expected_id(conn, ds_id, exp, classes), class_id_for(conn, ds_id, new, classes=classes))
                for i, exp, new in changes]
        begin_edit(conn)
        stage_labels(conn, rows)
        if kind is None:
            kind = "relabel" if len(rows) == 1 else "bulk_relabel"
        if description is None:
            targets = sorted({_show(new) for _, _, new in changes})
            description = (f"set {len(rows)} image{'s' if len(rows) != 1 else ''} to "
                           + (", ".join(targets[:3]) + (" …" if len(targets) > 3 else "")))
        return commit_staged(conn, ds_id, kind=kind, description=description,
                             user=current_user(user))


def set_label(ws: Workspace, dataset: str, expected: Mapping[int, str | None], new_label: str | None,
              *, user: str | None = None, description: str | None = None) -> ActionResult:
    """Give every image in ``expected`` (image id → the label it has now) ``new_label``."""
    return relabel(ws, dataset, [(i, exp, new_label) for i, exp in expected.items()], user=user,
                   description=description)


def relabel_image(ws: Workspace, dataset: str, image_id: int, new_label: str | None, *,
                  expected: str | None, user: str | None = None) -> ActionResult:
    """Give one image ``new_label`` (``None`` = unlabelled) if it still has ``expected``.

    One action; raises ``LabelConflict`` and writes nothing if its label changed meanwhile.
    """
    return relabel(ws, dataset, [(image_id, expected, new_label)], user=user, kind="relabel")


def move_to_split(ws: Workspace, dataset: str, image_ids: Iterable[int], split: str, *,
                  user: str | None = None) -> ActionResult:
    """Move the given images to ``split`` (train, val or test), as one action.

    Raises ``ImageLabError`` for an unknown split.
    """
    check_split(split)
    ids = sorted({int(i) for i in image_ids})
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        begin_edit(conn)
        stage_image_field(conn, "split", [(i, split) for i in ids])
        return commit_staged(conn, ds_id, kind="move_split",
                             description=f"move {len(ids)} images to {split}", user=current_user(user))


def set_excluded(ws: Workspace, dataset: str, image_ids: Iterable[int], excluded: bool = True, *,
                 user: str | None = None, kind: str | None = None) -> ActionResult:
    """Exclude images from training (or include them again); they keep their label."""
    ids = sorted({int(i) for i in image_ids})
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        begin_edit(conn)
        stage_image_field(conn, "excluded", [(i, "1" if excluded else "0") for i in ids])
        return commit_staged(
            conn, ds_id, kind=kind or ("exclude" if excluded else "include"),
            description=f"{'exclude' if excluded else 'include'} {len(ids)} images "
                        f"{'from' if excluded else 'in'} training", user=current_user(user))


def _expected_id(conn, ds_id: int, label: str | None, classes: dict[str, int]) -> int | None:
    """An expected label that names no live class can never match: use an impossible id."""
    if label is None:
        return None
    return classes.get(label, -1)


def _show(label: str | None) -> str:
    return "(unlabelled)" if label is None else repr(label)
