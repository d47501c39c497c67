"""The Label page's Queue mode: the unlabelled images one at a time, one button
(and one keyboard key) per class, auto-advance, previous and next.

Each class button carries the label the queue showed for the image, so labelling
an image another tab labelled meanwhile is refused with a conflict.
"""

from __future__ import annotations

import streamlit as st

from core.labels import classes as label_classes
from core.labels import relabel
from core.labels.selection import count_unlabelled, get_image, queue_neighbour
from core.store.workspace import Workspace
from dashboard.label_actions import flash, run_edit, show_label
from dashboard.labelling.common import md_escape

RESERVED_KEYS = {"c", "r"}


def shortcut_keys(names: list[str]) -> list[str | None]:
    """One key per class: the name itself when every name is one distinct key,
    else 1…9 and 0 for the first ten classes (C and R are Streamlit's own)."""
    singles = [n for n in names if len(n) == 1 and n.isalnum() and n.lower() not in RESERVED_KEYS]
    if names and len(singles) == len(names) and len({n.lower() for n in names}) == len(names):
        return list(names)
    keys = [str(k) for k in range(1, 10)] + ["0"]
    return [keys[i] if i < len(keys) else None for i in range(len(names))]


def unlabelled_queue(ws: Workspace, dataset: str) -> None:
    """The current unlabelled image of ``dataset`` with the class buttons."""
    classes = label_classes.list_classes(ws, dataset)
    names = [c.name for c in classes]
    remaining = count_unlabelled(ws, dataset)
    key_cur, key_done = f"queue_cur_{dataset}", f"queue_done_{dataset}"
    done: set[int] = st.session_state.setdefault(key_done, set())
    current = st.session_state.get(key_cur)
    img = get_image(ws, dataset, current) if current else None
    if img is None or (img.label is not None and img.id not in done):
        current = queue_neighbour(ws, dataset, 0, forward=True)
        st.session_state[key_cur] = current
        img = get_image(ws, dataset, current) if current else None
    st.caption(f"{remaining:,} unlabelled images left · labelled here this session: {len(done)}")
    if img is None:
        st.info("No unlabelled images in this dataset. Clear labels in the gallery, or import "
                "images without labels, to use the queue.")
        return
    if not names:
        st.warning("Add a class first (Classes).")
        return
    left, right = st.columns([1, 2])
    with left:
        st.image(str(img.file), width=280)
        st.text(f"#{img.id} {img.original_name}\nnow: {show_label(img.label)}")
    with right:
        st.toggle("Auto-advance to the next image", value=True, key="queue_auto")
        keys = shortcut_keys(names)
        cols = st.columns(min(5, len(names)))
        for k, (c, key) in enumerate(zip(classes, keys, strict=True)):
            cols[k % len(cols)].button(
                md_escape(c.name) + (f" [{key}]" if key and key != c.name else ""),
                key=f"queue_btn_{k}", shortcut=key, width="stretch",
                type="primary" if img.label == c.name else "secondary",
                help=c.description or None,
                on_click=_label, args=(ws, dataset, img.id, img.label, c.name))
        p, n = st.columns(2)
        p.button("← Previous", key="queue_prev", shortcut="Left", width="stretch",
                 on_click=_move, args=(ws, dataset, img.id, False))
        n.button("Next →", key="queue_next", shortcut="Right", width="stretch",
                 on_click=_move, args=(ws, dataset, img.id, True))
        st.caption("Keys: " + ", ".join(f"{k} = {n}" for n, k in zip(names, keys, strict=True) if k)
                   + " · ← / → previous and next")


def _label(ws, dataset, image_id: int, expected: str | None, label: str) -> None:
    """Label the image shown (``expected``: its label when drawn), then maybe advance."""
    def advance() -> None:
        st.session_state.setdefault(f"queue_done_{dataset}", set()).add(image_id)
        if st.session_state.get("queue_auto", True):
            _move(ws, dataset, image_id, True)

    run_edit(relabel.relabel_image, ws, dataset, image_id, label, expected=expected,
             ok=f"Saved: #{image_id} is {label}", then=advance)


def _move(ws, dataset, image_id: int, forward: bool) -> None:
    done = st.session_state.setdefault(f"queue_done_{dataset}", set())
    nxt = queue_neighbour(ws, dataset, image_id, forward=forward, also=done)
    if nxt is None:
        flash("info", "That was the last image of the queue." if forward else "This is the first image.")
        if forward:  # wrap around to the first unlabelled image left
            nxt = queue_neighbour(ws, dataset, 0, forward=True)
    if nxt is not None:
        st.session_state[f"queue_cur_{dataset}"] = nxt
