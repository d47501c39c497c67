"""Pages of images for the data gallery, and one image's full detail.

Rows come from ``core.data.image_rows`` (keyset paging: ``id > last_id`` on an
index, so a page costs the same on a dataset of 1,000 or 100,000 images).
"""

from __future__ import annotations

from core.data.image_rows import ImageFilter, ImageRow, image_rows
from core.data.quality import FLAGS
from core.errors import NotFoundError
from core.store.workspace import Workspace


def image_page(ws: Workspace, dataset: str, *, label: str | None = None, split: str | None = None,
               flag: str | None = None, after_id: int = 0, limit: int = 48) -> list[ImageRow]:
    """Up to ``limit`` images with id > ``after_id``; ``label=""`` means unlabelled.

    ``flag`` is one of ``QUALITY_FILTERS``. Content flags are a stored bit field;
    "label conflict" and "leakage" depend on current labels and splits, so they are
    looked up live (restricted to images that share their content hash). A thin
    wrapper over ``core.data.image_rows.image_rows``.
    """
    return image_rows(ws, dataset, ImageFilter(label=label, split=split, flag=flag),
                      after_id=after_id, limit=limit)


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
