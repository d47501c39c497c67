"""Finding images to label: filters, pages, "all matching this filter", the unlabelled queue.

A selection carries each image's label as read, so an edit can state what it
expects to replace (see ``core.labels.relabel``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.data.thumbnails import thumbnail_file
from core.labels.common import class_names_by_id, dataset_id
from core.store.workspace import Workspace

UNLABELLED = ""   # the label filter value that means "no label"


@dataclass(frozen=True)
class ImageFilter:
    label: str | None = None        # None: any; "": unlabelled; else a class name
    split: str | None = None
    excluded: bool | None = None
    name_contains: str = ""

    def where(self, conn, ds_id: int) -> tuple[str, list]:
        where, params = ["i.dataset_id = ?"], [ds_id]
        if self.label == UNLABELLED:
            where.append("i.class_id IS NULL")
        elif self.label is not None:
            where.append("i.class_id = (SELECT id FROM classes WHERE dataset_id = ? AND name = ? "
                         "AND deleted_at IS NULL)")
            params += [ds_id, self.label]
        if self.split:
            where.append("i.split = ?")
            params.append(self.split)
        if self.excluded is not None:
            where.append("i.excluded = ?")
            params.append(1 if self.excluded else 0)
        if self.name_contains:
            where.append("instr(lower(i.original_name), lower(?)) > 0")
            params.append(self.name_contains)
        return " AND ".join(where), params


@dataclass
class LabelImage:
    id: int
    name: str
    path: str           # workspace-relative
    label: str | None
    split: str
    excluded: bool
    sha256: str
    width: int
    height: int
    thumb: Path = field(default=Path())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["thumb"] = str(self.thumb)
        return d


_COLS = "i.id, i.original_name, i.path, i.class_id, i.split, i.excluded, i.sha256, i.width, i.height"


def _rows(ws, conn, ds_id, rows) -> list[LabelImage]:
    names = class_names_by_id(conn, ds_id)
    return [LabelImage(r[0], r[1], r[2], names.get(r[3]), r[4], bool(r[5]), r[6], r[7], r[8],
                       thumbnail_file(ws.root, ws.thumbs_dir, r[6], r[2])) for r in rows]


def count_matching(ws: Workspace, dataset: str, flt: ImageFilter) -> int:
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        where, params = flt.where(conn, ds_id)
        return int(conn.execute(f"SELECT COUNT(*) FROM images i WHERE {where}", params).fetchone()[0])


def find_images(ws: Workspace, dataset: str, flt: ImageFilter = ImageFilter(), *,
                offset: int = 0, limit: int = 50) -> list[LabelImage]:
    """One page of matching images, in id order."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        where, params = flt.where(conn, ds_id)
        rows = conn.execute(f"SELECT {_COLS} FROM images i WHERE {where} ORDER BY i.id "
                            "LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return _rows(ws, conn, ds_id, rows)


def matching_labels(ws: Workspace, dataset: str, flt: ImageFilter) -> dict[int, str | None]:
    """{image id: current label} of every image matching the filter ("select all")."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        where, params = flt.where(conn, ds_id)
        return {int(r[0]): names.get(r[1]) for r in conn.execute(
            f"SELECT i.id, i.class_id FROM images i WHERE {where} ORDER BY i.id", params)}


def get_image(ws: Workspace, dataset: str, image_id: int) -> LabelImage | None:
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        rows = conn.execute(f"SELECT {_COLS} FROM images i WHERE i.dataset_id = ? AND i.id = ?",
                            (ds_id, int(image_id))).fetchall()
        out = _rows(ws, conn, ds_id, rows)
    return out[0] if out else None


def queue_neighbour(ws: Workspace, dataset: str, current: int, *, forward: bool,
                    also: frozenset[int] | set[int] = frozenset(), split: str | None = None) -> int | None:
    """The next (or previous) unlabelled image after ``current``; ids in ``also``
    (images labelled in this session) count as part of the queue, so "previous"
    can go back to them."""
    op, order = (">", "ASC") if forward else ("<", "DESC")
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        extra = f" OR i.id IN ({','.join(str(int(i)) for i in also)})" if also else ""
        split_sql, params = ("", []) if not split else (" AND i.split = ?", [split])
        row = conn.execute(
            f"SELECT i.id FROM images i WHERE i.dataset_id = ? AND i.id {op} ? "
            f"AND (i.class_id IS NULL{extra}){split_sql} ORDER BY i.id {order} LIMIT 1",
            (ds_id, int(current), *params)).fetchone()
    return None if row is None else int(row[0])


def count_unlabelled(ws: Workspace, dataset: str) -> int:
    return count_matching(ws, dataset, ImageFilter(label=UNLABELLED))
