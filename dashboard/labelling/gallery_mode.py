"""The Label page's Gallery mode: filter and page the images (keyset pages, with
"Previous" / "Next"), tick some (or all matching), and bulk-edit them: set
their label, move them to a split, exclude or include them. The image detail
below the grid is ``detail.image_detail``.

The bulk buttons carry the selection as drawn (image id → the label shown), so
a bulk relabel of images another tab changed meanwhile is refused as a whole.
"""

from __future__ import annotations

import streamlit as st

from core.labels import classes as label_classes
from core.labels import relabel
from core.labels.selection import UNLABELLED, ImageFilter, count_matching, find_images, matching_labels
from core.store.workspace import Workspace
from dashboard.gallery import page_stack
from dashboard.label_actions import NO_LABEL, chosen_label, edit_button, run_edit, show_label
from dashboard.labelling.common import ALL, label_choice
from dashboard.labelling.detail import image_detail

PAGE_SIZE = 24


def gallery(ws: Workspace, dataset: str) -> None:
    """Filters, one page of thumbnails with ticks, the bulk edits and the image detail."""
    classes = label_classes.list_classes(ws, dataset)
    names = [c.name for c in classes]
    desc = {c.name: c.description for c in classes}
    f1, f2, f3 = st.columns([2, 1, 2])
    label = f1.selectbox("Class", [ALL, NO_LABEL] + names, key="gal_class",
                         format_func=label_choice(desc) if names else None)
    split = f2.selectbox("Split", [ALL, "train", "val", "test"], key="gal_split")
    text = f3.text_input("File name contains", key="gal_text")
    flt = ImageFilter(label=None if label == ALL else UNLABELLED if label == NO_LABEL else label,
                      split=None if split == ALL else split, name_contains=text.strip())
    total = count_matching(ws, dataset, flt)
    rows, has_next, stack = _page(ws, dataset, flt)
    c1, c2, c3 = st.columns([1, 1, 4])
    c1.button("◀ Previous", key="gal_prev", disabled=len(stack) == 1,
              on_click=lambda: stack.pop() if len(stack) > 1 else None)
    last_id = rows[-1].id if rows else 0
    c2.button("Next ▶", key="gal_next", disabled=not has_next,
              on_click=lambda: stack.append(last_id))
    pages = max(1, -(-total // PAGE_SIZE))
    c3.caption(f"{total:,} images match · page {len(stack)} of {pages}")
    select_all = st.checkbox(f"Select all {total:,} images matching this filter", key="gal_all")
    cols = st.columns(8)
    picked: dict[int, str | None] = {}
    for k, row in enumerate(rows):
        with cols[k % 8]:
            if row.thumb.exists():
                st.image(str(row.thumb), width="stretch")
            st.text(f"{show_label(row.label)} · {row.split}" + (" · excluded" if row.excluded else ""))
            if st.checkbox(f"#{row.id}", key=f"gal_pick_{row.id}", disabled=select_all):
                picked[row.id] = row.label
    selection = matching_labels(ws, dataset, flt) if select_all else picked
    st.session_state["gal_page_ids"] = [r.id for r in rows]
    _bulk_actions(ws, dataset, selection, names, desc)
    image_detail(ws, dataset, [r.id for r in rows], names, desc)


def _page(ws, dataset: str, flt: ImageFilter) -> tuple[list, bool, list[int]]:
    """This page's rows, whether a next page exists, and the stack of page starts.

    Pages are keyset pages (``after_id``): the stack holds the id each visited
    page starts after, so "Previous" pops it and "Next" pushes the last id shown.
    A change of dataset or filter starts again at the first page.
    """
    stack = page_stack("gal", (dataset, flt))
    rows = find_images(ws, dataset, flt, after_id=stack[-1], limit=PAGE_SIZE + 1)
    if not rows and len(stack) > 1:   # the page emptied (its images left the filter): step back
        stack.pop()
        rows = find_images(ws, dataset, flt, after_id=stack[-1], limit=PAGE_SIZE + 1)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE, stack


def _bulk_actions(ws, dataset, selection: dict[int, str | None], names, desc) -> None:
    n = len(selection)
    ids = tuple(selection)
    st.markdown(f"**{n:,} selected**")
    b1, b2, b3 = st.columns(3)
    with b1:
        st.selectbox("Set label to", names + [NO_LABEL], key="bulk_label",
                     format_func=label_choice(desc))
        st.button(f"Set label of {n:,} images", key="bulk_set", disabled=not n, type="primary",
                  on_click=_bulk_set, args=(ws, dataset, dict(selection)))
    with b2:
        st.selectbox("Move to split", ["train", "val", "test"], key="bulk_split")
        st.button(f"Move {n:,} images", key="bulk_move", disabled=not n,
                  on_click=_bulk_move, args=(ws, dataset, ids))
    with b3:
        st.write("Training")
        edit_button(st, f"Exclude {n:,} from training", relabel.set_excluded, ws, dataset, ids, True,
                    key="bulk_exclude", ok="Excluded", disabled=not n)
        edit_button(st, f"Include {n:,} again", relabel.set_excluded, ws, dataset, ids, False,
                    key="bulk_include", ok="Included", disabled=not n)


def _bulk_set(ws, dataset, selection: dict[int, str | None]) -> None:
    """Give the drawn selection (id → label shown) the label picked in "Set label to"."""
    new = chosen_label("bulk_label")
    run_edit(relabel.set_label, ws, dataset, selection, new,
             ok=f"Saved: {len(selection):,} images set to {show_label(new)}",
             then=lambda: _untick(selection))


def _untick(image_ids) -> None:
    for image_id in image_ids:   # clear the ticks of the edited images
        st.session_state.pop(f"gal_pick_{image_id}", None)


def _bulk_move(ws, dataset, image_ids: tuple[int, ...]) -> None:
    run_edit(relabel.move_to_split, ws, dataset, image_ids, st.session_state.bulk_split, ok="Moved")
