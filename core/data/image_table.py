"""Every image of a dataset as columns, in one query: what a map of 100,000 points needs.

``image_rows`` builds one ``ImageRow`` (with its file paths) per image, which is right for a
page of a gallery; colouring a map needs the label, split, exclusion and quality flags of
every image at once, as plain arrays in id order.
"""

from __future__ import annotations

import numpy as np

from core.data.catalog import get_dataset_id
from core.data.quality import FLAGS
from core.store.workspace import Workspace

NO_FLAG = "none"


def image_table(ws: Workspace, dataset: str) -> dict[str, np.ndarray]:
    """Columns of every image of ``dataset`` in id order: ``image_id`` (int64), ``name`` (the
    original file name), ``label`` (class name, None when unlabelled), ``split``,
    ``excluded`` (bool) and ``flag`` (the first quality flag's name, or ``"none"``)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        rows = conn.execute(
            "SELECT i.id, i.original_name, c.name, i.split, i.excluded, COALESCE(i.flags, 0) "
            "FROM images i LEFT JOIN classes c ON c.id = i.class_id WHERE i.dataset_id = ? "
            "ORDER BY i.id", (ds_id,)).fetchall()
    cols = list(zip(*rows)) if rows else [()] * 6
    flags = np.asarray(cols[5], dtype=np.int64)
    return {"image_id": np.asarray(cols[0], dtype=np.int64),
            "name": np.asarray(cols[1], dtype=object),
            "label": np.asarray(cols[2], dtype=object),
            "split": np.asarray(cols[3], dtype=object),
            "excluded": np.asarray(cols[4], dtype=bool),
            "flag": flag_names(flags)}


def flag_names(flags: np.ndarray) -> np.ndarray:
    """The name of each image's first quality flag (in ``FLAGS`` order), or ``"none"``."""
    out = np.full(len(flags), NO_FLAG, dtype=object)
    for name, bit in reversed(list(FLAGS.items())):     # the first flag in FLAGS wins
        out[(flags & bit) != 0] = name
    return out
