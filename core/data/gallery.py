"""Pages of images for galleries: filters, keyset paging, thumbnails.

Paging is by ``id > last_id`` on an index, so a page costs the same on a
dataset of 1,000 or 100,000 images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from core.data.catalog import get_dataset_id
from core.data.thumbnails import thumbnail_path
from core.store.workspace import Workspace


@dataclass
class ImageRow:
    id: int
    original_name: str
    label: str | None
    split: str
    width: int
    height: int
    excluded: bool
    thumb: Path

    def to_dict(self) -> dict:
        d = asdict(self)
        d["thumb"] = str(self.thumb)
        return d


def image_page(ws: Workspace, dataset: str, *, label: str | None = None, split: str | None = None,
               after_id: int = 0, limit: int = 48) -> list[ImageRow]:
    """Up to ``limit`` images with id > ``after_id``; ``label=""`` means unlabelled."""
    ds_id = get_dataset_id(ws, dataset)
    where, params = ["i.dataset_id = ?", "i.id > ?"], [ds_id, after_id]
    if label == "":
        where.append("i.class_id IS NULL")
    elif label is not None:
        where.append("c.name = ?")
        params.append(label)
    if split is not None:
        where.append("i.split = ?")
        params.append(split)
    with ws.db() as conn:
        rows = conn.execute(
            f"SELECT i.id, i.original_name, c.name AS label, i.split, i.width, i.height, "
            f"i.excluded, i.sha256 FROM images i LEFT JOIN classes c ON c.id = i.class_id "
            f"WHERE {' AND '.join(where)} ORDER BY i.id LIMIT ?", (*params, limit)).fetchall()
    return [ImageRow(r["id"], r["original_name"], r["label"], r["split"], r["width"], r["height"],
                     bool(r["excluded"]), thumbnail_path(ws.thumbs_dir, r["sha256"]))
            for r in rows]
