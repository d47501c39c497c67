"""Pages of images for galleries: filters, keyset paging, thumbnails.

Paging is by ``id > last_id`` on an index, so a page costs the same on a
dataset of 1,000 or 100,000 images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from core.data.catalog import get_dataset_id
from core.data.quality import FLAGS
from core.data.thumbnails import thumbnail_file
from core.errors import NotFoundError
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


QUALITY_FILTERS = ("duplicate", "near-duplicate", "dark", "bright", "blurry", "label conflict",
                   "leakage")


def image_page(ws: Workspace, dataset: str, *, label: str | None = None, split: str | None = None,
               flag: str | None = None, after_id: int = 0, limit: int = 48) -> list[ImageRow]:
    """Up to ``limit`` images with id > ``after_id``; ``label=""`` means unlabelled.

    ``flag`` is one of ``QUALITY_FILTERS``. Content flags are a stored bit field;
    "label conflict" and "leakage" depend on current labels and splits, so they are
    looked up live (restricted to images that share their content hash).
    """
    ds_id = get_dataset_id(ws, dataset)
    where, params = ["i.dataset_id = ?", "i.id > ?"], [ds_id, after_id]
    if flag in FLAGS:
        where.append("(i.flags & ?) != 0")
        params.append(FLAGS[flag])
    elif flag in ("label conflict", "leakage"):
        column = "COALESCE(j.class_id, -1)" if flag == "label conflict" else "j.split"
        mine = "COALESCE(i.class_id, -1)" if flag == "label conflict" else "i.split"
        where.append(f"(i.flags & 1) != 0 AND EXISTS (SELECT 1 FROM images j WHERE "
                     f"j.dataset_id = i.dataset_id AND j.sha256 = i.sha256 AND {column} != {mine})")
    elif flag is not None:
        raise ValueError(f"unknown quality filter {flag!r}")
    index = "images_by_dataset"
    if label == "":
        where.append("i.class_id IS NULL")
        index = "images_by_class"
    elif label is not None:
        with ws.db() as conn:
            row = conn.execute("SELECT id FROM classes WHERE dataset_id = ? AND name = ? "
                               "AND deleted_at IS NULL", (ds_id, label)).fetchone()
        if row is None:
            return []
        where.append("i.class_id = ?")
        params.append(int(row[0]))
        index = "images_by_class"
    if split is not None:
        where.append("i.split = ?")
        params.append(split)
        if index == "images_by_dataset":
            index = "images_by_split"
    # INDEXED BY keeps the planner on an index ordered by (filter columns, id): the page
    # is a range scan that stops after ``limit`` rows, never a sort of the whole dataset.
    with ws.db() as conn:
        rows = conn.execute(
            f"SELECT i.id, i.original_name, c.name AS label, i.split, i.width, i.height, "
            f"i.excluded, i.sha256, i.path FROM images i INDEXED BY {index} "
            f"LEFT JOIN classes c ON c.id = i.class_id "
            f"WHERE {' AND '.join(where)} ORDER BY i.id LIMIT ?", (*params, limit)).fetchall()
    return [ImageRow(r["id"], r["original_name"], r["label"], r["split"], r["width"], r["height"],
                     bool(r["excluded"]),
                     thumbnail_file(ws.root, ws.thumbs_dir, r["sha256"], r["path"]))
            for r in rows]


def image_detail(ws: Workspace, image_id: int) -> dict:
    """Everything known about one image, with its file path and flag names."""
    with ws.db() as conn:
        r = conn.execute("SELECT i.*, c.name AS label, d.name AS dataset FROM images i "
                         "JOIN datasets d ON d.id = i.dataset_id "
                         "LEFT JOIN classes c ON c.id = i.class_id WHERE i.id = ?",
                         (image_id,)).fetchone()
    if r is None:
        raise NotFoundError(f"no image with id {image_id}")
    d = dict(r)
    d["file"] = str(ws.resolve(r["path"]))
    d["flag_names"] = [name for name, bit in FLAGS.items() if (r["flags"] or 0) & bit]
    return d
