"""The Label page under Streamlit's AppTest, on real sample workspaces."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.labels import history as label_history
from core.labels import relabel
from core.labels.selection import ImageFilter, find_images, matching_labels
from core.store.workspace import open_workspace
from tests.conftest import private_workspace
from tests.dashboard.apptest import open_page


@pytest.fixture(scope="module")
def _small_master(tmp_path_factory):
    from core.data.samples import import_sample
    root = tmp_path_factory.mktemp("labelpage") / "ws"
    ws = open_workspace(root)
    import_sample(ws, "sample:digits")
    import_sample(ws, "sample:shapes", count=600, size=32)
    return root


@pytest.fixture
def ws(_small_master, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGELAB_USER", "tester")
    return private_workspace(_small_master, tmp_path, monkeypatch)


def label_page(mode: str = "Gallery", dataset: str = "digits") -> AppTest:
    at = open_page("pages/2_Label.py", 60)
    if dataset != "digits":
        at.selectbox(key="label_dataset").select(dataset).run()
    if mode != "Gallery":
        at.radio(key="label_mode").set_value(mode).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("success", "warning", "error", "info")
                     for e in getattr(at, kind))


def label_of(ws, image_id):
    with ws.db() as conn:
        row = conn.execute("SELECT c.name FROM images i LEFT JOIN classes c ON c.id = i.class_id "
                           "WHERE i.id = ?", (image_id,)).fetchone()
    return row[0]


def test_gallery_pages_forward_and_back_by_keyset(ws):
    """Next / Previous walk keyset pages; an edit before the page does not shift it."""
    three = ImageFilter(label="3")
    at = label_page()
    at.selectbox(key="gal_class").select("3").run()
    page1 = at.session_state["gal_page_ids"]
    assert page1 == [r.id for r in find_images(ws, "digits", three, limit=24)]
    assert at.button(key="gal_prev").disabled
    at.button(key="gal_next").click().run()
    page2 = at.session_state["gal_page_ids"]
    assert page2 == [r.id for r in find_images(ws, "digits", three, after_id=page1[-1], limit=24)]
    assert len(page2) == 24 and page2[0] > page1[-1]
    assert any("page 2 of" in str(c.value) for c in at.caption)
    # another tab takes two images of page 1 out of the filter: page 2 stays as it was
    relabel.set_label(ws, "digits", {page1[0]: "3", page1[1]: "3"}, "8")
    at.run()
    assert at.session_state["gal_page_ids"] == page2
    at.button(key="gal_prev").click().run()
    assert at.session_state["gal_page_ids"] == page1[2:] + page2[:2]
    at.button(key="gal_next").click().run()
    at.selectbox(key="gal_split").select("val").run()      # a new filter starts at page 1
    assert at.session_state["gal_page_ids"] == [
        r.id for r in find_images(ws, "digits", ImageFilter(label="3", split="val"), limit=24)]
    assert not at.exception


def test_gallery_pick_and_bulk_relabel_then_undo_in_history(ws):
    at = label_page()
    at.selectbox(key="gal_class").select("3").run()
    first = find_images(ws, "digits", ImageFilter(label="3"), limit=2)
    at.checkbox(key=f"gal_pick_{first[0].id}").check().run()
    at.checkbox(key=f"gal_pick_{first[1].id}").check().run()
    at.selectbox(key="bulk_label").select("8").run()
    at.button(key="bulk_set").click().run()
    assert not at.exception
    assert "2 images set to 8" in texts(at)
    assert [label_of(ws, i.id) for i in first] == ["8", "8"]
    # select all matching a filter: class 5 in the val split
    at.selectbox(key="gal_class").select("5").run()
    at.selectbox(key="gal_split").select("val").run()
    expected = matching_labels(ws, "digits", ImageFilter(label="5", split="val"))
    at.checkbox(key="gal_all").check().run()
    assert at.button(key="bulk_set").label == f"Set label of {len(expected)} images"
    at.selectbox(key="bulk_label").select("(unlabelled)").run()
    at.button(key="bulk_set").click().run()
    assert all(label_of(ws, i) is None for i in expected)
    at.radio(key="label_mode").set_value("History").run()
    assert at.button(key="undo_last").label.startswith("Undo #")
    table = at.table[0].value
    assert table.iloc[0]["kind"] == "bulk_relabel" and table.iloc[0]["who"] == "tester"
    at.button(key="undo_last").click().run()
    assert not at.exception and "Undone" in texts(at)
    assert all(label_of(ws, i) == "5" for i in expected)
    assert [label_of(ws, i.id) for i in first] == ["8", "8"]


def test_detail_view_fixes_one_label_and_a_stale_tab_gets_a_conflict(ws):
    at = label_page()
    img = find_images(ws, "digits", limit=1)[0]
    at.selectbox(key="detail_id").select(img.id).run()
    at.selectbox(key=f"detail_label_{img.id}").select("7").run()
    # Meanwhile another tab changes the same image.
    relabel.relabel_image(ws, "digits", img.id, "1", expected=img.label)
    at.button(key="detail_save").click().run()
    assert "Conflict" in texts(at) and "'1'" in texts(at)
    assert label_of(ws, img.id) == "1"
    # Now the page shows the new label; saving works.
    at.selectbox(key=f"detail_label_{img.id}").select("7").run()
    at.button(key="detail_save").click().run()
    assert "is now 7" in texts(at)
    assert label_of(ws, img.id) == "7"
    events = label_history.label_history(ws, "digits", image_id=img.id)
    assert [(e.old_label, e.new_label) for e in events[:2]] == [("1", "7"), (img.label, "1")]


def shown_id(at) -> int:
    return int(at.text[0].value.split(" ", 1)[0].lstrip("#"))


def test_queue_buttons_have_shortcuts_and_auto_advance(ws):
    ids = sorted(find_images(ws, "shapes", limit=4), key=lambda i: i.id)
    relabel.set_label(ws, "shapes", {i.id: i.label for i in ids}, None)
    at = label_page("Queue", "shapes")
    buttons = sorted((b for b in at.button if b.key and b.key.startswith("queue_btn_")),
                     key=lambda b: int(b.key.rsplit("_", 1)[1]))
    assert len(buttons) == 6
    shortcuts = [b.proto.shortcut for b in buttons]
    assert shortcuts == ["1", "2", "3", "4", "5", "6"]
    assert at.button(key="queue_next").proto.shortcut.lower() in ("left", "right", "arrowright")
    first = shown_id(at)        # no run: the queue is in random order
    assert first in {i.id for i in ids}
    circle = next(b for b in buttons if b.label.startswith("circle"))
    circle.click().run()
    assert label_of(ws, first) == "circle"
    second = shown_id(at)       # advanced to the next unlabelled image
    assert second != first and second in {i.id for i in ids}
    at.button(key="queue_prev").click().run()
    assert shown_id(at) == first     # previous goes back to the labelled one
    at.toggle(key="queue_auto").set_value(False).run()
    at.button(key="queue_next").click().run()
    assert shown_id(at) == second
    sq = next(b for b in at.button if b.key and b.key.startswith("queue_btn_") and b.label.startswith("square"))
    sq.click().run()
    assert label_of(ws, second) == "square"
    assert shown_id(at) == second    # stayed


def test_digit_classes_use_their_own_keys():
    from dashboard.labelling import shortcut_keys
    assert shortcut_keys([str(d) for d in range(10)]) == [str(d) for d in range(10)]
    assert shortcut_keys(["cat", "dog"]) == ["1", "2"]
    assert shortcut_keys(["a", "c"]) == ["1", "2"]     # C is Streamlit's own


def test_class_manager_and_html_names_render_as_text(ws):
    at = label_page("Classes", "shapes")
    at.text_input(key="cls_add_name").input("<script>alert(1)</script>").run()
    at.text_input(key="cls_add_desc").input("<b>bold?</b>").run()
    at.button(key="cls_add").click().run()
    assert not at.exception and "Class added" in texts(at)
    table = at.table[0].value
    assert "<script>alert(1)</script>" in list(table.index)
    assert table.loc["<script>alert(1)</script>", "description"] == "<b>bold?</b>"
    at.selectbox(key="cls_merge_src").select("hexagon").run()
    at.selectbox(key="cls_merge_dst").select("<script>alert(1)</script>").run()
    at.button(key="cls_merge").click().run()
    table = at.table[0].value
    assert "hexagon" not in list(table.index)
    assert table.loc["<script>alert(1)</script>", "images"] > 0
    # the queue shows it as a literal (escaped) button label
    relabel.set_label(ws, "shapes", {find_images(ws, "shapes", limit=1)[0].id:
                               find_images(ws, "shapes", limit=1)[0].label}, None)
    at.radio(key="label_mode").set_value("Queue").run()
    assert any("\\<script\\>" in b.label for b in at.button)


def test_review_without_runs_says_what_is_needed(ws):
    at = label_page("Review")
    assert any("finished training run" in i.value for i in at.info)
