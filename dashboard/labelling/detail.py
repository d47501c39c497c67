"""The Label page's image detail: one image of the gallery page, its label,
split and size, a new-label picker with "Save label", and the image's history.

"Save label" carries the label the detail showed as the edit's expected label,
so saving over a change made in another tab is refused with a conflict.
"""

from __future__ import annotations

import streamlit as st

from core.labels import history as label_history
from core.labels import relabel
from core.labels.selection import get_image
from dashboard.label_actions import NO_LABEL, chosen_label, run_edit, show_label
from dashboard.labelling.common import events_frame, label_choice
from dashboard.similar import more_like_this_expander


def image_detail(ws, dataset: str, page_ids: list[int], names: list[str],
                 desc: dict[str, str]) -> None:
    """Pick one of ``page_ids`` and show it, with "Save label" and its history."""
    st.subheader("Image detail")
    if not page_ids:
        st.caption("No image on this page.")
        return
    image_id = st.selectbox("Image", page_ids, key="detail_id", format_func=lambda i: f"#{i}")
    img = get_image(ws, dataset, image_id)
    if img is None:
        return
    left, right = st.columns([1, 2])
    with left:
        st.image(str(img.file), width=256)
    with right:
        st.text(f"{img.original_name}\nlabel: {show_label(img.label)}\nsplit: {img.split}"
                f"{'  (excluded from training)' if img.excluded else ''}\n"
                f"{img.width}×{img.height}")
        if img.label and desc.get(img.label):
            st.text(f"{img.label}: {desc[img.label]}")
        options = names + [NO_LABEL]
        st.selectbox("New label", options, key=f"detail_label_{img.id}",
                     index=options.index(show_label(img.label)) if show_label(img.label) in options else 0,
                     format_func=label_choice(desc))
        st.button("Save label", key="detail_save", type="primary", on_click=_save,
                  args=(ws, dataset, img.id, img.label))
        events = label_history.label_history(ws, dataset, image_id=img.id, limit=20)
        st.caption("History of this image")
        st.table(events_frame(events))
    more_like_this_expander(ws, dataset, key=f"detail_mlt_{img.id}", image_id=img.id)


def _save(ws, dataset, image_id: int, expected: str | None) -> None:
    """Relabel to the picked label; ``expected`` is the label drawn with the button."""
    new = chosen_label(f"detail_label_{image_id}")
    run_edit(relabel.relabel_image, ws, dataset, image_id, new, expected=expected,
             ok=f"Saved: image #{image_id} is now {show_label(new)}")
