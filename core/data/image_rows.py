"""The one reader of image rows: filters, id lists and keyset paging.

The data gallery (``core.data.gallery``), the labelling selection
(``core.labels.selection``) and error analysis (the Evaluate page's image
panels) all read images through ``image_rows``, so they see the same row type
and page the same way.

Paging is by keyset: ``id > after_id ORDER BY id LIMIT n`` on an index whose
order is (filter columns, id). A page costs the same on 1,000 or 100,000
images, and it stays correct when images before it are relabelled or moved
between page loads (an ``OFFSET`` would shift by the images that left or
joined the filter).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.data.catalog import get_dataset_id
from core.data.quality import FLAGS
from core.data.thumbnails import thumbnail_file
from core.store.workspace import Workspace

UNLABELLED = ""   # the label filter value that means "no label"

QUALITY_FILTERS = ("duplicate", "near-duplicate", "dark", "bright", "blurry", "label conflict",
                   "leakage")

ID_CHUNK = 500    # ids per ``IN (...)`` list, below SQLite's bound-parameter limit


@dataclass(frozen=True)
class ImageFilter:
    """Which images of a dataset to read.

    ``label``: None for any, ``UNLABELLED`` ("") for no label, else a class name
    (a name with no live class matches nothing). ``split``: "train", "val",
    "test" or None. ``flag``: one of ``QUALITY_FILTERS`` or None. ``excluded``:
    True / False to keep only excluded / included images, None for both.
    ``name_contains``: a case-insensitive substring of the original file name.
    """

    label: str | None = None
    split: str | None = None
    excluded: bool | None = None
    name_contains: str = ""
    flag: str | None = None

    def where(self, conn: sqlite3.Connection, ds_id: int | None) -> tuple[str | None, list, str]:
        """SQL condition on ``images i``, its parameters, and the index to page on.

        The condition is None when the filter cannot match (an unknown class
        name), so the caller can skip the query. ``ds_id`` None leaves the
        dataset open (for id lists); a class-name filter then raises
        ``ValueError``, as does an unknown flag.
        """
        where, params, index = ["1"], [], "images_by_dataset"
        if ds_id is not None:
            where, params = ["i.dataset_id = ?"], [ds_id]
        if self.label == UNLABELLED:
            where.append("i.class_id IS NULL")
            index = "images_by_class"
        elif self.label is not None:
            if ds_id is None:
                raise ValueError("a class-name filter needs a dataset")
            row = conn.execute("SELECT id FROM classes WHERE dataset_id = ? AND name = ? "
                               "AND deleted_at IS NULL", (ds_id, self.label)).fetchone()
            if row is None:
                return None, [], index
            where.append("i.class_id = ?")
            params.append(int(row[0]))
            index = "images_by_class"
        if self.split:
            where.append("i.split = ?")
            params.append(self.split)
            if index == "images_by_dataset":
                index = "images_by_split"
        if self.excluded is not None:
            where.append("i.excluded = ?")
            params.append(1 if self.excluded else 0)
        if self.name_contains:
            where.append("instr(lower(i.original_name), lower(?)) > 0")
            params.append(self.name_contains)
        if self.flag in FLAGS:
            where.append("(i.flags & ?) != 0")
            params.append(FLAGS[self.flag])
        elif self.flag in ("label conflict", "leakage"):
            # These depend on current labels and splits, so they are looked up live,
            # among images flagged as sharing their content hash (bit 1: duplicate).
            column = "COALESCE(j.class_id, -1)" if self.flag == "label conflict" else "j.split"
            mine = "COALESCE(i.class_id, -1)" if self.flag == "label conflict" else "i.split"
            where.append(f"(i.flags & 1) != 0 AND EXISTS (SELECT 1 FROM images j WHERE "
                         f"j.dataset_id = i.dataset_id AND j.sha256 = i.sha256 AND {column} != {mine})")
        elif self.flag is not None:
            raise ValueError(f"unknown quality filter {self.flag!r}")
        return " AND ".join(where), params, index


@dataclass
class ImageRow:
    """One image as read now: its label, split and exclusion are current."""

    id: int
    dataset_id: int
    original_name: str
    path: str           # workspace-relative
    file: Path          # absolute path of the stored file
    label: str | None   # None: unlabelled
    split: str
    excluded: bool
    width: int
    height: int
    sha256: str
    thumb: Path         # the cached thumbnail's path (it may not be built yet)

    def to_dict(self) -> dict:
        """Plain values (paths as strings), for JSON and tables."""
        d = asdict(self)
        d["file"], d["thumb"] = str(self.file), str(self.thumb)
        return d


_SELECT = ("SELECT i.id, i.dataset_id, i.original_name, i.path, c.name AS label, i.split, "
           "i.excluded, i.width, i.height, i.sha256 FROM images i")


def image_rows(ws: Workspace, dataset: str | None, flt: ImageFilter = ImageFilter(), *,
               ids: Iterable[int] | None = None, after_id: int = 0,
               limit: int | None = 48) -> list[ImageRow]:
    """Images matching ``flt`` with id > ``after_id``, in id order, at most ``limit``.

    The next page starts after the last row's id. ``dataset`` None reads any
    dataset and needs ``ids`` (a class-name filter then raises ``ValueError``). ``ids`` restricts the read to those images (looked up in chunks
    of ``ID_CHUNK``; unknown ids are skipped). ``limit`` None reads every match.
    Raises ``NotFoundError`` for an unknown dataset.
    """
    id_list = None if ids is None else sorted({int(i) for i in ids if int(i) > after_id})
    if dataset is None and id_list is None:
        raise ValueError("image_rows needs a dataset or a list of ids")
    if id_list is not None and not id_list:
        return []
    if limit is not None and limit <= 0:
        return []
    ds_id = None if dataset is None else get_dataset_id(ws, dataset)
    out: list[ImageRow] = []
    with ws.db() as conn:
        where, params, index = flt.where(conn, ds_id)
        if where is None:
            return []
        chunks = [None] if id_list is None else [id_list[k:k + ID_CHUNK]
                                                 for k in range(0, len(id_list), ID_CHUNK)]
        for chunk in chunks:
            left = None if limit is None else limit - len(out)
            if left is not None and left <= 0:
                break
            sql, args = [where, "i.id > ?"], [*params, after_id]
            if chunk is None:
                # INDEXED BY keeps the planner on an index ordered by (filter columns, id):
                # the page is a range scan that stops after ``limit`` rows, never a sort
                # of the whole dataset.
                source = f"{_SELECT} INDEXED BY {index}"
            else:
                source = _SELECT     # an id list: the primary key finds each row
                sql.append(f"i.id IN ({','.join('?' * len(chunk))})")
                args += chunk
            rows = conn.execute(
                f"{source} LEFT JOIN classes c ON c.id = i.class_id WHERE {' AND '.join(sql)} "
                f"ORDER BY i.id" + ("" if left is None else " LIMIT ?"),
                (*args, *(() if left is None else (left,)))).fetchall()
            out += [_row(ws, r) for r in rows]
    return out


def rows_by_id(ws: Workspace, image_ids: Iterable[int], dataset: str | None = None
               ) -> dict[int, ImageRow]:
    """{id: row} for the given images (any dataset unless ``dataset`` is named).

    Ids that no longer exist are missing from the result.
    """
    return {r.id: r for r in image_rows(ws, dataset, ids=image_ids, limit=None)}


def _row(ws: Workspace, r: sqlite3.Row) -> ImageRow:
    return ImageRow(r["id"], r["dataset_id"], r["original_name"], r["path"], ws.resolve(r["path"]),
                    r["label"], r["split"], bool(r["excluded"]), r["width"], r["height"],
                    r["sha256"], thumbnail_file(ws.root, ws.thumbs_dir, r["sha256"], r["path"]))
