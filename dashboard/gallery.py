"""A thumbnail grid for galleries (cached JPEG thumbnails, never full images)."""

from __future__ import annotations

import streamlit as st

from core.data.gallery import image_page
from core.data.image_rows import QUALITY_FILTERS, ImageRow
from dashboard.label_actions import show_flash, show_label
from dashboard.quality import image_detail_view


def thumbnail_grid(rows: list[ImageRow], columns: int = 8) -> None:
    if not rows:
        st.caption("No images match.")
        return
    cols = st.columns(columns)
    for k, row in enumerate(rows):
        with cols[k % columns]:
            label = show_label(row.label)
            if row.thumb.exists():
                st.image(str(row.thumb), caption=f"{label} · {row.split}", width="stretch")
            else:
                st.caption(f"#{row.id} {label} (no thumbnail)")


PAGE_SIZE = 32


def page_stack(key: str, filters) -> list[int]:
    """The keyset-paging stack kept in ``st.session_state[key + "_stack"]``: the id each
    visited page starts after (``after_id``). A change of ``filters`` starts again at the
    first page."""
    if st.session_state.get(f"{key}_filters") != filters:
        st.session_state[f"{key}_filters"] = filters
        st.session_state[f"{key}_stack"] = [0]
    return st.session_state[f"{key}_stack"]


@st.fragment
def paged_gallery(ws, dataset: str, classes: list[str]) -> None:
    """Filters, keyset paging (id > last id) and a detail picker, rerun on their own."""
    f1, f2, f3 = st.columns(3)
    label = f1.selectbox("Class", ["(all)", "(unlabelled)"] + classes, key="gallery_class")
    split = f2.selectbox("Split", ["(all)", "train", "val", "test"], key="gallery_split")
    flag = f3.selectbox("Quality flag", ["(any)", *QUALITY_FILTERS], key="gallery_flag")
    filters = (dataset, label, split, flag)
    stack = page_stack("gallery", filters)
    rows = image_page(ws, dataset, label=None if label == "(all)" else ("" if label == "(unlabelled)"
                                                                        else label),
                      split=None if split == "(all)" else split,
                      flag=None if flag == "(any)" else flag, after_id=stack[-1],
                      limit=PAGE_SIZE + 1)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    thumbnail_grid(rows)
    c1, c2, c3 = st.columns([1, 1, 4])
    last_id = rows[-1].id if rows else 0
    c1.button("◀ Previous", key="gallery_prev", disabled=len(stack) == 1,
              on_click=lambda: stack.pop() if len(stack) > 1 else None)
    c2.button("Next ▶", key="gallery_next", disabled=not has_next,
              on_click=lambda: stack.append(last_id))
    c3.caption(f"Page {len(stack)} · {len(rows)} images shown")
    show_flash()     # what the detail's "Save label" did (it reruns this fragment only)
    if rows:
        names = {r.id: f"#{r.id} {r.original_name}" for r in rows}
        pick = st.selectbox("Inspect an image", [0, *names], key="gallery_detail",
                            format_func=lambda i: names.get(i, "(choose an image on this page)"))
        if pick:
            image_detail_view(ws, pick, dataset=dataset, classes=classes)
