"""The map's column reader: every image of a dataset, current labels, splits and flags."""

from __future__ import annotations

import numpy as np

from core.data.image_rows import image_rows
from core.data.image_table import flag_names, image_table
from core.data.quality import FLAG_BLURRY, FLAG_DARK, FLAG_DUPLICATE
from core.labels.relabel import move_to_split, relabel_image, set_excluded


def test_image_table_matches_the_row_reader_and_follows_edits(sample_workspace):
    ws = sample_workspace
    table = image_table(ws, "digits")
    rows = image_rows(ws, "digits", limit=None)
    assert len(table["image_id"]) == len(rows) == 1797
    assert table["image_id"].tolist() == [r.id for r in rows]
    assert table["label"].tolist() == [r.label for r in rows]
    assert table["split"].tolist() == [r.split for r in rows]
    first = int(table["image_id"][0])
    old = table["label"][0]
    new = "7" if old != "7" else "1"
    relabel_image(ws, "digits", first, new, expected=old)
    move_to_split(ws, "digits", [first], "test")
    set_excluded(ws, "digits", [first], True)
    after = image_table(ws, "digits")
    assert (after["label"][0], after["split"][0], bool(after["excluded"][0])) == (new, "test", True)
    assert not after["excluded"][1:].any()


def test_flag_names_take_the_first_flag():
    flags = np.array([0, FLAG_DARK, FLAG_DARK | FLAG_DUPLICATE, FLAG_BLURRY])
    assert flag_names(flags).tolist() == ["none", "dark", "duplicate", "blurry"]
