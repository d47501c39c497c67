"""Finding images to label: filters, pages, "all matching this filter", the unlabelled queue.

Rows and filters come from ``core.data.image_rows`` (one reader, keyset
paging). A selection carries each image's label as read, so an edit can state
what it expects to replace (see ``core.labels.relabel``).
"""

from __future__ import annotations

from core.data.image_rows import UNLABELLED, ImageFilter, ImageRow, image_rows
from core.labels.common import class_names_by_id, dataset_id
from core.store.workspace import Workspace

__all__ = ["UNLABELLED", "ImageFilter", "ImageRow", "count_matching", "count_unlabelled",
           "find_images", "get_image", "matching_labels", "queue_neighbour"]


def count_matching(ws: Workspace, dataset: str, flt: ImageFilter) -> int:
    """How many images of ``dataset`` match ``flt``."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        where, params, _ = flt.where(conn, ds_id)
        if where is None:
            return 0
        return int(conn.execute(f"SELECT COUNT(*) FROM images i WHERE {where}", params).fetchone()[0])


def find_images(ws: Workspace, dataset: str, flt: ImageFilter | None = None, *,
                after_id: int = 0, limit: int = 50) -> list[ImageRow]:
    """One page of matching images with id > ``after_id``, in id order.

    The next page starts after the last row's id (keyset paging, see
    ``core.data.image_rows``). Each row carries its label as read. ``flt``
    None matches every image.
    """
    return image_rows(ws, dataset, flt or ImageFilter(), after_id=after_id, limit=limit)


def matching_labels(ws: Workspace, dataset: str, flt: ImageFilter) -> dict[int, str | None]:
    """{image id: current label} of every image matching the filter ("select all")."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        where, params, _ = flt.where(conn, ds_id)
        if where is None:
            return {}
        return {int(r[0]): names.get(r[1]) for r in conn.execute(
            f"SELECT i.id, i.class_id FROM images i WHERE {where} ORDER BY i.id", params)}


def get_image(ws: Workspace, dataset: str, image_id: int) -> ImageRow | None:
    """One image of ``dataset`` as it is now, or None if it is not there."""
    rows = image_rows(ws, dataset, ids=[image_id], limit=1)
    return rows[0] if rows else None


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
    """How many images of ``dataset`` have no label."""
    return count_matching(ws, dataset, ImageFilter(label=UNLABELLED))
