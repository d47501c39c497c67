"""The Label page's Queue mode: the unlabelled images one at a time, ordered by an
active-learning strategy, one button (and one keyboard key) per class, auto-advance,
previous and next.

With a finished run the model's predicted class is pre-selected: **Enter** accepts it, and
the class buttons are ordered by predicted probability (each class keeps its own key, so
the keys do not move). Each button carries the label the queue showed for the image, so
labelling an image another tab labelled meanwhile is refused with a conflict.
"""

from __future__ import annotations

import streamlit as st

from core.labels import classes as label_classes
from core.labels import relabel
from core.labels.selection import count_unlabelled, get_image
from core.store.workspace import Workspace
from dashboard.label_actions import flash, run_edit, show_label
from dashboard.labelling.active_order import Ranking, order_controls, rank, ranked_neighbour, why_text
from dashboard.labelling.common import md_escape
from dashboard.labelling.retrain_loop import retrain_controls

RESERVED_KEYS = {"c", "r"}
ACCEPT_KEY = "Enter"


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
    if remaining == 0 and not st.session_state.get(f"queue_done_{dataset}"):
        st.info("No unlabelled images in this dataset. Clear labels in the gallery, or import "
                "images without labels, to use the queue.")
        return
    ranking = order_controls(ws, dataset)
    if ranking is None:
        return
    if ranking.message:
        st.info(ranking.message)
    retrain_controls(ws, dataset, ranking)
    img, ranking = _current(ws, dataset, ranking)
    done = st.session_state.setdefault(f"queue_done_{dataset}", set())
    st.caption(f"{remaining:,} unlabelled images left · labelled here this session: {len(done)}")
    if img is None:
        st.info("No unlabelled images in this dataset. Clear labels in the gallery, or import "
                "images without labels, to use the queue.")
        return
    if not names:
        st.warning("Add a class first (Classes).")
        return
    item = ranking.items.get(img.id)
    left, right = st.columns([1, 2])
    with left:
        st.image(str(img.file), width=280)
        st.text(f"#{img.id} {img.original_name}\nnow: {show_label(img.label)}")
    with right:
        st.toggle("Auto-advance to the next image", value=True, key="queue_auto")
        suggested = item.predicted if item is not None and item.predicted else None
        if suggested is not None:
            st.caption(why_text(item, ranking.applied))
            st.button(f"Accept: {md_escape(suggested)}", key="queue_accept",
                      shortcut=ACCEPT_KEY, type="primary", width="stretch",
                      on_click=_label, args=(ws, dataset, img.id, img.label, suggested))
        _class_buttons(ws, dataset, img, classes, item if suggested else None)
        p, n = st.columns(2)
        p.button("← Previous", key="queue_prev", shortcut="Left", width="stretch",
                 on_click=_move, args=(ws, dataset, img.id, False))
        n.button("Next →", key="queue_next", shortcut="Right", width="stretch",
                 on_click=_move, args=(ws, dataset, img.id, True))
        keys = shortcut_keys(names)
        st.caption(("Enter = accept the suggestion · " if suggested else "")
                   + "Keys: " + ", ".join(f"{k} = {n}" for n, k in zip(names, keys, strict=True) if k)
                   + " · ← / → previous and next")


def _class_buttons(ws, dataset: str, img, classes, item) -> None:
    """One button per class, each with its own key, most probable first when predicted."""
    names = [c.name for c in classes]
    keys = shortcut_keys(names)
    prob = dict(item.probabilities) if item is not None else {}
    order = sorted(range(len(classes)), key=lambda k: -prob.get(names[k], -1.0)) if prob \
        else list(range(len(classes)))
    cols = st.columns(min(5, len(names)))
    for slot, k in enumerate(order):
        c, key = classes[k], keys[k]
        text = md_escape(c.name) + (f" [{key}]" if key and key != c.name else "")
        if c.name in prob:
            text += f" · {prob[c.name]:.0%}"
        selected = img.label == c.name or (img.label is None and item is not None
                                           and item.predicted == c.name)
        cols[slot % len(cols)].button(
            text, key=f"queue_btn_{k}", shortcut=key, width="stretch",
            type="primary" if selected else "secondary", help=c.description or None,
            on_click=_label, args=(ws, dataset, img.id, img.label, c.name))


def _current(ws, dataset: str, ranking: Ranking):
    """(image, ranking): the image the queue is on, the session's unless another tab labelled
    it, else the ranking's first unlabelled image; once every ranked image is labelled, the
    images left are ranked again."""
    key_cur, done = f"queue_cur_{dataset}", st.session_state.setdefault(f"queue_done_{dataset}", set())
    current = st.session_state.get(key_cur)
    img = get_image(ws, dataset, current) if current is not None else None
    if img is not None and (img.label is None or img.id in done):
        return img, ranking
    nxt = ranked_neighbour(ws, dataset, ranking, None, forward=True)
    if nxt is None and ranking.ids:
        fresh = rank(ws, dataset, ranking.strategy, ranking.run_id)
        if fresh is not None and fresh.ids:
            st.session_state[f"queue_rank_{dataset}"] = ranking = fresh
            nxt = ranked_neighbour(ws, dataset, ranking, None, forward=True)
    st.session_state[key_cur] = nxt
    return (get_image(ws, dataset, nxt) if nxt is not None else None), ranking


def _label(ws, dataset, image_id: int, expected: str | None, label: str) -> None:
    """Label the image shown (``expected``: its label when drawn), then maybe advance."""
    def advance() -> None:
        st.session_state.setdefault(f"queue_done_{dataset}", set()).add(image_id)
        if st.session_state.get("queue_auto", True):
            _move(ws, dataset, image_id, True)

    run_edit(relabel.relabel_image, ws, dataset, image_id, label, expected=expected,
             ok=f"Saved: #{image_id} is {label}", then=advance)


def _move(ws, dataset, image_id: int, forward: bool) -> None:
    ranking = st.session_state.get(f"queue_rank_{dataset}")
    if ranking is None:
        return
    done = st.session_state.setdefault(f"queue_done_{dataset}", set())
    nxt = ranked_neighbour(ws, dataset, ranking, image_id, forward=forward, also=done)
    if nxt is None:
        flash("info", "That was the last image of the queue." if forward else "This is the first image.")
        if forward:  # wrap around to the first unlabelled image left
            nxt = ranked_neighbour(ws, dataset, ranking, None, forward=True)
    if nxt is not None:
        st.session_state[f"queue_cur_{dataset}"] = nxt
    elif forward:   # every ranked image is labelled: the next run ranks the images left
        st.session_state.pop(f"queue_cur_{dataset}", None)
