"""Datasets in the workspace: look up, list, describe, create and delete.

Returns plain dataclasses and dicts so the CLI prints them as JSON and the
dashboard turns them into tables.
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field

from core.errors import ImageLabError, NotFoundError
from core.store.workspace import Workspace

SPLITS = ("train", "val", "test")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class DatasetSummary:
    """One dataset as listed: id, name, source, image counts, class names, creation time.

    ``num_labelled`` counts images with a class; ``created_at`` is a Unix time in seconds;
    ``classes`` is in display order.
    """
    id: int
    name: str
    source: str
    num_images: int
    num_labelled: int
    classes: list[str]
    created_at: float

    def to_dict(self) -> dict:
        """The summary as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass
class DatasetInfo(DatasetSummary):
    """A dataset in detail: its summary plus counts per split and per class.

    ``splits`` maps train/val/test to image counts; ``per_class`` has one
    ``{class, total, train, val, test}`` dict per class; ``unlabelled`` counts images
    without a class per split; ``excluded`` counts images left out of training;
    ``label_version`` is the id of the last label event (it changes with every edit).
    """
    splits: dict[str, int] = field(default_factory=dict)
    per_class: list[dict] = field(default_factory=list)  # {class, total, train, val, test}
    unlabelled: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    label_version: int = 0


def validate_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise ``ImageLabError``.

    Valid: 1-64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
    """
    if not _NAME_RE.match(name or ""):
        raise ImageLabError(
            f"invalid dataset name {name!r}: use 1–64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


def find_dataset_id(ws: Workspace, name: str) -> int | None:
    """The id of the dataset called ``name``, or ``None`` if there is none."""
    with ws.db() as conn:
        row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row["id"])


def get_dataset_id(ws: Workspace, name: str) -> int:
    """The id of the dataset called ``name``; raises ``NotFoundError`` (naming the known
    datasets) if there is none.
    """
    ds_id = find_dataset_id(ws, name)
    if ds_id is None:
        known = [d.name for d in list_datasets(ws)]
        hint = f"; known datasets: {', '.join(known)}" if known else "; the workspace has no datasets yet"
        raise NotFoundError(f"unknown dataset {name!r}{hint}")
    return ds_id


def list_datasets(ws: Workspace) -> list[DatasetSummary]:
    """Every dataset of the workspace, sorted by name, with image and label counts."""
    with ws.db() as conn:
        rows = conn.execute(
            """SELECT d.id, d.name, d.source, d.created_at,
                      (SELECT COUNT(*) FROM images i WHERE i.dataset_id = d.id) AS n,
                      (SELECT COUNT(*) FROM images i WHERE i.dataset_id = d.id
                                                     AND i.class_id IS NOT NULL) AS nl
               FROM datasets d ORDER BY d.name""").fetchall()
        classes = _class_names_by_dataset(conn)
    return [DatasetSummary(r["id"], r["name"], r["source"], r["n"], r["nl"],
                           classes.get(r["id"], []), r["created_at"]) for r in rows]


def dataset_info(ws: Workspace, name: str) -> DatasetInfo:
    """Counts per split and per class of the dataset called ``name``.

    Raises ``NotFoundError`` if there is no such dataset.
    """
    ds_id = get_dataset_id(ws, name)
    with ws.db() as conn:
        d = conn.execute("SELECT * FROM datasets WHERE id = ?", (ds_id,)).fetchone()
        class_rows = conn.execute(
            "SELECT id, name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
            "ORDER BY position, name", (ds_id,)).fetchall()
        counts = conn.execute(
            "SELECT class_id, split, COUNT(*) AS n FROM images WHERE dataset_id = ? "
            "GROUP BY class_id, split", (ds_id,)).fetchall()
        excluded = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ? AND excluded = 1",
                                (ds_id,)).fetchone()[0]
        version = label_version(conn, ds_id)
    per_class = {r["id"]: {"class": r["name"], "total": 0, **{s: 0 for s in SPLITS}}
                 for r in class_rows}
    unlabelled = {s: 0 for s in SPLITS}
    splits = {s: 0 for s in SPLITS}
    for r in counts:
        splits[r["split"]] += r["n"]
        if r["class_id"] is None:
            unlabelled[r["split"]] += r["n"]
        elif r["class_id"] in per_class:
            per_class[r["class_id"]][r["split"]] += r["n"]
            per_class[r["class_id"]]["total"] += r["n"]
    total = sum(splits.values())
    return DatasetInfo(
        id=ds_id, name=d["name"], source=d["source"], num_images=total,
        num_labelled=total - sum(unlabelled.values()),
        classes=[r["name"] for r in class_rows], created_at=d["created_at"],
        splits=splits, per_class=list(per_class.values()), unlabelled=unlabelled,
        excluded=int(excluded), label_version=version)


PHOTO_MIN_SIDE = 96      # px: the median longer side from which colour images look like photos


@dataclass
class PhotoCheck:
    """Whether a dataset looks like photos, and why: ``colour_share`` is the share of its
    images decoded as RGB, ``median_side`` the median of their longer sides (px).
    ``looks_like_photos``: mostly colour and a median side of at least ``PHOTO_MIN_SIDE``,
    where fine-tuning from ImageNet weights is the better start than training from scratch."""
    looks_like_photos: bool
    colour_share: float
    median_side: int
    num_images: int


def photo_check(ws: Workspace, name: str) -> PhotoCheck:
    """Read from the image table (modes and sizes measured at import): whether dataset
    ``name`` looks like photos (see ``PhotoCheck``). Raises ``NotFoundError`` if there is
    no such dataset."""
    ds_id = get_dataset_id(ws, name)
    with ws.db() as conn:
        rows = conn.execute("SELECT mode = 'RGB', MAX(width, height) FROM images "
                            "WHERE dataset_id = ?", (ds_id,)).fetchall()
    if not rows:
        return PhotoCheck(False, 0.0, 0, 0)
    colour = sum(r[0] for r in rows) / len(rows)
    side = int(statistics.median(r[1] for r in rows))
    return PhotoCheck(colour >= 0.5 and side >= PHOTO_MIN_SIDE, colour, side, len(rows))


def label_version(conn, dataset_id: int) -> int:
    """The id of the dataset's last label event (0 when it has none)."""
    row = conn.execute(
        "SELECT MAX(e.id) FROM label_events e JOIN actions a ON a.id = e.action_id "
        "WHERE a.dataset_id = ?", (dataset_id,)).fetchone()
    return int(row[0] or 0)


def create_dataset(conn, name: str, source: str, description: str = "") -> int:
    """Insert a dataset row inside the caller's transaction; return its id."""
    validate_dataset_name(name)
    if conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
        raise ImageLabError(f"a dataset named {name!r} already exists; choose another --name "
                            "or add to it explicitly")
    cur = conn.execute(
        "INSERT INTO datasets(name, source, description, created_at) VALUES (?, ?, ?, ?)",
        (name, source, description, time.time()))
    return int(cur.lastrowid)


def ensure_classes(conn, dataset_id: int, names: list[str]) -> dict[str, int]:
    """Return {class name: id}, creating the missing classes (in the given order)."""
    existing = {r["name"]: r["id"] for r in conn.execute(
        "SELECT id, name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL", (dataset_id,))}
    position = len(existing)
    for name in names:
        if name not in existing:
            cur = conn.execute(
                "INSERT INTO classes(dataset_id, name, position) VALUES (?, ?, ?)",
                (dataset_id, name, position))
            existing[name] = int(cur.lastrowid)
            position += 1
    return existing


def delete_dataset(ws: Workspace, name: str) -> None:
    """Remove a dataset, its rows and its files (runs keep their folders)."""
    ds_id = get_dataset_id(ws, name)
    with ws.write() as conn:
        paths = [r[0] for r in conn.execute("SELECT path FROM images WHERE dataset_id = ?", (ds_id,))]
        conn.execute("DELETE FROM datasets WHERE id = ?", (ds_id,))
    # images/<batch>/... : each import batch has its own folder
    batches = {"/".join(p.split("/")[:2]) for p in paths if p.count("/") >= 2}
    for rel in batches:
        shutil.rmtree(ws.resolve(rel), ignore_errors=True)
    shutil.rmtree(ws.dataset_cache_dir(ds_id), ignore_errors=True)


def _class_names_by_dataset(conn) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in conn.execute("SELECT dataset_id, name FROM classes WHERE deleted_at IS NULL "
                          "ORDER BY dataset_id, position, name"):
        out.setdefault(r["dataset_id"], []).append(r["name"])
    return out
