"""core/data/image_rows, the one image-row reader, on real sample workspaces:
keyset pages, every filter, id lookups, and pages that stay right across edits."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.image_rows import UNLABELLED, ImageFilter, image_rows, rows_by_id
from core.data.ingest import DatasetWriter
from core.errors import NotFoundError
from core.labels.relabel import move_to_split, relabel_image, set_excluded, set_label
from core.labels.selection import count_matching, find_images, get_image


def _ids(ws, sql: str, params=()) -> list[int]:
    with ws.db() as conn:
        return [int(r[0]) for r in conn.execute(sql, params)]


def _ds(ws, name: str) -> int:
    with ws.db() as conn:
        return int(conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()[0])


def _all_pages(ws, dataset, flt, size):
    """Walk the keyset pages: each starts after the last id of the one before."""
    pages, after = [], 0
    while True:
        page = image_rows(ws, dataset, flt, after_id=after, limit=size)
        if not page:
            return pages
        assert len(page) <= size
        pages.append(page)
        after = page[-1].id


def test_keyset_pages_cover_every_image_once(sample_workspace):
    ws = sample_workspace
    expected = _ids(ws, "SELECT id FROM images WHERE dataset_id = ? ORDER BY id", (_ds(ws, "digits"),))
    pages = _all_pages(ws, "digits", ImageFilter(), 97)
    seen = [r.id for p in pages for r in p]
    assert seen == expected                       # in id order, none missed, none twice
    assert len(set(seen)) == len(seen) > 1000
    assert all(len(p) == 97 for p in pages[:-1])  # full pages until the last
    for a, b in zip(pages, pages[1:], strict=False):
        assert a[-1].id < b[0].id                 # no overlap between neighbours


@pytest.mark.parametrize("flt, sql, params", [
    (ImageFilter(label="3"), "c.name = '3'", ()),
    (ImageFilter(label=UNLABELLED), "i.class_id IS NULL", ()),
    (ImageFilter(split="val"), "i.split = 'val'", ()),
    (ImageFilter(label="7", split="test"), "c.name = '7' AND i.split = 'test'", ()),
    (ImageFilter(name_contains="1"), "instr(lower(i.original_name), '1') > 0", ()),
])
def test_each_filter_matches_the_database_across_pages(sample_workspace, flt, sql, params):
    ws = sample_workspace
    ds_id = _ds(ws, "digits")
    if flt.label == UNLABELLED:     # make some unlabelled images to find
        some = image_rows(ws, "digits", ImageFilter(label="4"), limit=30)
        set_label(ws, "digits", {r.id: r.label for r in some}, None)
    expected = _ids(ws, f"SELECT i.id FROM images i LEFT JOIN classes c ON c.id = i.class_id "
                        f"WHERE i.dataset_id = ? AND {sql} ORDER BY i.id", (ds_id, *params))
    assert expected                                 # the filter is not vacuous
    rows = [r for p in _all_pages(ws, "digits", flt, 40) for r in p]
    assert [r.id for r in rows] == expected
    assert count_matching(ws, "digits", flt) == len(expected)
    for r in rows:
        if flt.label is not None:
            assert r.label == (None if flt.label == UNLABELLED else flt.label)
        if flt.split is not None:
            assert r.split == flt.split


def test_excluded_filter_and_row_fields(sample_workspace):
    ws = sample_workspace
    first = image_rows(ws, "shapes", limit=5)
    set_excluded(ws, "shapes", [r.id for r in first[:3]], True)
    excluded = image_rows(ws, "shapes", ImageFilter(excluded=True), limit=None)
    assert [r.id for r in excluded] == [r.id for r in first[:3]]
    assert all(r.excluded for r in excluded)
    included = image_rows(ws, "shapes", ImageFilter(excluded=False), limit=None)
    assert {r.id for r in included}.isdisjoint({r.id for r in excluded})
    assert len(included) + 3 == count_matching(ws, "shapes", ImageFilter())
    row = included[0]
    assert row.file == ws.root / row.path and row.file.is_file()
    assert row.width > 0 and row.height > 0 and len(row.sha256) == 64
    assert row.dataset_id == _ds(ws, "shapes") and row.original_name
    assert row.to_dict()["file"] == str(row.file)


def test_unknown_class_matches_nothing_and_unknown_dataset_raises(sample_workspace):
    ws = sample_workspace
    assert image_rows(ws, "digits", ImageFilter(label="no-such-class")) == []
    assert count_matching(ws, "digits", ImageFilter(label="no-such-class")) == 0
    with pytest.raises(NotFoundError):
        image_rows(ws, "no-such-dataset")
    with pytest.raises(ValueError):
        image_rows(ws, "digits", ImageFilter(flag="mouldy"))


def test_id_lists_across_datasets_and_chunks(sample_workspace):
    ws = sample_workspace
    digits = _ids(ws, "SELECT id FROM images WHERE dataset_id = ? ORDER BY id", (_ds(ws, "digits"),))
    shapes = _ids(ws, "SELECT id FROM images WHERE dataset_id = ? ORDER BY id", (_ds(ws, "shapes"),))
    wanted = digits[:700] + shapes[:10] + [10**9]        # > one chunk, two datasets, one unknown
    got = rows_by_id(ws, reversed(wanted))
    assert set(got) == set(wanted) - {10**9}
    assert got[shapes[0]].dataset_id == _ds(ws, "shapes")
    # the same ids through a dataset and a filter: only that dataset's matches, paged by keyset
    in_digits = image_rows(ws, "digits", ImageFilter(split="train"), ids=wanted, limit=None)
    truth = _ids(ws, f"SELECT id FROM images WHERE dataset_id = ? AND split = 'train' AND id IN "
                     f"({','.join(map(str, digits[:700]))}) ORDER BY id", (_ds(ws, "digits"),))
    assert [r.id for r in in_digits] == truth
    page = image_rows(ws, "digits", ImageFilter(), ids=wanted, after_id=digits[600], limit=50)
    assert [r.id for r in page] == digits[601:651]
    assert get_image(ws, "digits", shapes[0]) is None    # not an image of that dataset
    assert get_image(ws, "shapes", shapes[0]).id == shapes[0]


def test_a_page_stays_right_when_an_earlier_image_is_relabelled(sample_workspace):
    ws = sample_workspace
    flt = ImageFilter(label="3")
    first = find_images(ws, "digits", flt, limit=10)
    second = find_images(ws, "digits", flt, after_id=first[-1].id, limit=10)
    # between page loads, another tab relabels two images of the first page
    set_label(ws, "digits", {first[0].id: "3", first[1].id: "3"}, "8")
    again = find_images(ws, "digits", flt, after_id=first[-1].id, limit=10)
    assert [r.id for r in again] == [r.id for r in second]
    # what OFFSET paging returned for page 2 now: it skips two images nobody has seen
    everyone = [r.id for r in image_rows(ws, "digits", flt, limit=None)]
    assert everyone[10:20] != [r.id for r in second]


def _dups(ws) -> dict[str, int]:
    """A dataset with an exact copy labelled two ways and an exact copy labelled alike."""
    img = np.zeros((16, 16), dtype=np.uint8)
    img[4:12, 4:12] = 255
    other = np.zeros((16, 16), dtype=np.uint8)
    other[:, :8] = 200
    plain = np.full((16, 16), 128, dtype=np.uint8)
    plain[::2] = 90
    with DatasetWriter(ws, "dups", "test") as w:
        w.add_array(img, original_name="a.png", label="square", split="train")
        w.add_array(img, original_name="b.png", label="circle", split="train")
        w.add_array(other, original_name="c.png", label="circle", split="train")
        w.add_array(other, original_name="d.png", label="circle", split="train")
        w.add_array(plain, original_name="e.png", label="circle", split="train")
        w.commit()
    return {r.original_name: r.id for r in image_rows(ws, "dups", limit=None)}


def test_quality_flags_including_live_conflict_and_leakage(workspace):
    ws = workspace
    ids = _dups(ws)

    def names(flag: str) -> list[str]:
        return [r.original_name for r in image_rows(ws, "dups", ImageFilter(flag=flag))]

    assert names("duplicate") == ["a.png", "b.png", "c.png", "d.png"]
    assert names("label conflict") == ["a.png", "b.png"]
    assert names("leakage") == []
    # both are looked up live: a fix or a move shows on the next read
    relabel_image(ws, "dups", ids["b.png"], "square", expected="circle")
    assert names("label conflict") == []
    move_to_split(ws, "dups", [ids["d.png"]], "val")
    assert names("leakage") == ["c.png", "d.png"]
    assert [r.original_name for r in image_rows(ws, "dups", ImageFilter(flag="leakage",
                                                                         split="val"))] == ["d.png"]
