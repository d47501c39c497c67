"""UI pieces of the Label page: class manager, gallery with bulk edits, image detail,
the unlabelled queue, history with undo/revert, and the label-review queue.

Every edit runs in a widget callback whose arguments were fixed when the widget
was drawn: the labels the user *saw* travel with the edit as its expected
labels, so an edit made from a stale tab is refused with a conflict message
instead of overwriting someone else's change. User text (class names, file
names) is shown only through plain-text elements or escaped markdown.
"""

from __future__ import annotations

import inspect

import re
import time

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.labels import LabelConflict
from core.labels import classes as C
from core.labels import history as H
from core.labels import quality as Q
from core.labels import relabel as R
from core.labels.selection import (UNLABELLED, ImageFilter, count_matching, count_unlabelled, find_images,
                                   get_image, matching_labels, queue_neighbour)
from core.store.workspace import Workspace
from dashboard.auth import current_user

NO_LABEL = "(unlabelled)"
ALL = "(all)"
RESERVED_KEYS = {"c", "r"}
PAGE_SIZE = 24

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def md_escape(text: str) -> str:
    """Markdown-escape user text so it renders literally (labels render markdown)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def show_label(label: str | None) -> str:
    return NO_LABEL if label is None else label


# -- messages that survive the rerun after a callback -------------------------------

def _flash(kind: str, text: str) -> None:
    st.session_state.setdefault("label_flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("label_flash", []):
        getattr(st, kind)(text)


def _edit(fn, *args, ok: str = "Saved", **kwargs) -> None:
    """Run a core edit as the signed-in user; report saved / conflict / error on the next run."""
    if "user" not in kwargs and "user" in inspect.signature(fn).parameters:
        kwargs["user"] = current_user()
    try:
        res = fn(*args, **kwargs)
    except LabelConflict as exc:
        _flash("warning", f"Conflict: {exc}")
        return
    except ImageLabError as exc:
        _flash("error", str(exc))
        return
    action = getattr(res, "action_id", None)
    if res is not None and action is None:
        _flash("info", "Nothing to change: the images already have that.")
    else:
        _flash("success", f"{ok}." + (f" (action #{action})" if action else ""))


# -- class manager ---------------------------------------------------------------------

def class_manager(ws: Workspace, dataset: str) -> None:
    classes = C.list_classes(ws, dataset)
    names = [c.name for c in classes]
    if classes:
        st.table(pd.DataFrame([{"class": c.name, "description": c.description, "images": c.images,
                                "train": c.train, "val": c.val, "test": c.test} for c in classes])
                 .set_index("class"))
    else:
        st.caption("No classes yet: add the first one.")
    add, rename, describe, merge, delete = st.tabs(["Add", "Rename", "Describe", "Merge", "Delete"])
    with add:
        st.text_input("New class name", key="cls_add_name")
        st.text_input("Description (optional)", key="cls_add_desc")
        st.button("Add class", key="cls_add", on_click=lambda: _edit(
            C.add_class, ws, dataset, st.session_state.cls_add_name,
            st.session_state.cls_add_desc, ok="Class added"))
    if not names:
        return
    with rename:
        st.selectbox("Class", names, key="cls_ren_old")
        st.text_input("New name", key="cls_ren_new")
        st.button("Rename", key="cls_ren", on_click=lambda: _edit(
            C.rename_class, ws, dataset, st.session_state.cls_ren_old, st.session_state.cls_ren_new,
            ok="Class renamed"))
    with describe:
        st.selectbox("Class", names, key="cls_desc_name")
        st.text_area("Description", key="cls_desc_text",
                     placeholder="What belongs in this class, and what does not")
        st.button("Save description", key="cls_desc", on_click=lambda: _edit(
            C.set_description, ws, dataset, st.session_state.cls_desc_name,
            st.session_state.cls_desc_text, ok="Description saved"))
    with merge:
        st.selectbox("Merge this class…", names, key="cls_merge_src")
        st.selectbox("…into this class", names, key="cls_merge_dst", index=min(1, len(names) - 1))
        st.button("Merge", key="cls_merge", on_click=lambda: _edit(
            C.merge_classes, ws, dataset, st.session_state.cls_merge_src,
            st.session_state.cls_merge_dst, ok="Classes merged"))
    with delete:
        st.selectbox("Class to delete", names, key="cls_del_name")
        st.selectbox("Its images", [NO_LABEL] + names, key="cls_del_to",
                     format_func=lambda n: "become unlabelled" if n == NO_LABEL else f"move to {n}")
        st.button("Delete class", key="cls_del", on_click=lambda: _edit(
            C.delete_class, ws, dataset, st.session_state.cls_del_name,
            reassign_to=None if st.session_state.cls_del_to == NO_LABEL else st.session_state.cls_del_to,
            ok="Class deleted"))


def _label_choice(names: list[str], descriptions: dict[str, str]):
    return lambda n: n if n == NO_LABEL or not descriptions.get(n) else f"{n} — {descriptions[n]}"


# -- gallery with selection and bulk edits ---------------------------------------------

def gallery(ws: Workspace, dataset: str) -> None:
    classes = C.list_classes(ws, dataset)
    names = [c.name for c in classes]
    desc = {c.name: c.description for c in classes}
    f1, f2, f3 = st.columns([2, 1, 2])
    label = f1.selectbox("Class", [ALL, NO_LABEL] + names, key="gal_class",
                         format_func=_label_choice(names, desc) if names else None)
    split = f2.selectbox("Split", [ALL, "train", "val", "test"], key="gal_split")
    text = f3.text_input("File name contains", key="gal_text")
    flt = ImageFilter(label=None if label == ALL else UNLABELLED if label == NO_LABEL else label,
                      split=None if split == ALL else split, name_contains=text.strip())
    total = count_matching(ws, dataset, flt)
    pages = max(1, -(-total // PAGE_SIZE))
    c1, c2 = st.columns([1, 3])
    page = c1.number_input("Page", 1, pages, 1, key="gal_page")
    c2.caption(f"{total:,} images match · page {page} of {pages}")
    rows = find_images(ws, dataset, flt, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
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


def _bulk_actions(ws, dataset, selection: dict[int, str | None], names, desc) -> None:
    n = len(selection)
    st.markdown(f"**{n:,} selected**")
    b1, b2, b3 = st.columns(3)
    with b1:
        st.selectbox("Set label to", names + [NO_LABEL], key="bulk_label",
                     format_func=_label_choice(names, desc))
        st.button(f"Set label of {n:,} images", key="bulk_set", disabled=not n, type="primary",
                  on_click=_bulk_set, args=(ws, dataset, dict(selection)))
    with b2:
        st.selectbox("Move to split", ["train", "val", "test"], key="bulk_split")
        st.button(f"Move {n:,} images", key="bulk_move", disabled=not n,
                  on_click=lambda ids=tuple(selection): _edit(
                      R.move_to_split, ws, dataset, ids, st.session_state.bulk_split, ok="Moved"))
    with b3:
        st.write("Training")
        st.button(f"Exclude {n:,} from training", key="bulk_exclude", disabled=not n,
                  on_click=lambda ids=tuple(selection): _edit(R.set_excluded, ws, dataset, ids, True,
                                                              ok="Excluded"))
        st.button(f"Include {n:,} again", key="bulk_include", disabled=not n,
                  on_click=lambda ids=tuple(selection): _edit(R.set_excluded, ws, dataset, ids, False,
                                                              ok="Included"))


def _bulk_set(ws, dataset, selection: dict[int, str | None]) -> None:
    target = st.session_state.bulk_label
    new = None if target == NO_LABEL else target
    _edit(R.set_label, ws, dataset, selection, new,
          ok=f"Saved: {len(selection):,} images set to {show_label(new)}")
    for image_id in selection:   # clear the ticks of the edited images
        st.session_state.pop(f"gal_pick_{image_id}", None)


def image_detail(ws, dataset, page_ids: list[int], names, desc) -> None:
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
        st.image(str(ws.resolve(img.path)), width=256)
    with right:
        st.text(f"{img.name}\nlabel: {show_label(img.label)}\nsplit: {img.split}"
                f"{'  (excluded from training)' if img.excluded else ''}\n"
                f"{img.width}×{img.height}")
        if img.label and desc.get(img.label):
            st.text(f"{img.label}: {desc[img.label]}")
        options = names + [NO_LABEL]
        st.selectbox("New label", options, key=f"detail_label_{img.id}",
                     index=options.index(show_label(img.label)) if show_label(img.label) in options else 0,
                     format_func=_label_choice(names, desc))
        st.button("Save label", key="detail_save", type="primary", on_click=_detail_save,
                  args=(ws, dataset, img.id, img.label))
        events = H.label_history(ws, dataset, image_id=img.id, limit=20)
        st.caption("History of this image")
        st.table(_events_frame(events))


def _detail_save(ws, dataset, image_id: int, expected: str | None) -> None:
    choice = st.session_state[f"detail_label_{image_id}"]
    new = None if choice == NO_LABEL else choice
    _edit(R.relabel_image, ws, dataset, image_id, new, expected=expected,
          ok=f"Saved: image #{image_id} is now {show_label(new)}")


# -- the unlabelled queue ----------------------------------------------------------------

def shortcut_keys(names: list[str]) -> list[str | None]:
    """One key per class: the name itself when every name is one distinct key,
    else 1…9 and 0 for the first ten classes (C and R are Streamlit's own)."""
    singles = [n for n in names if len(n) == 1 and n.isalnum() and n.lower() not in RESERVED_KEYS]
    if names and len(singles) == len(names) and len({n.lower() for n in names}) == len(names):
        return list(names)
    keys = [str(k) for k in range(1, 10)] + ["0"]
    return [keys[i] if i < len(keys) else None for i in range(len(names))]


def unlabelled_queue(ws: Workspace, dataset: str) -> None:
    classes = C.list_classes(ws, dataset)
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
        st.image(str(ws.resolve(img.path)), width=280)
        st.text(f"#{img.id} {img.name}\nnow: {show_label(img.label)}")
    with right:
        st.toggle("Auto-advance to the next image", value=True, key="queue_auto")
        keys = shortcut_keys(names)
        cols = st.columns(min(5, len(names)))
        for k, (c, key) in enumerate(zip(classes, keys)):
            cols[k % len(cols)].button(
                md_escape(c.name) + (f" [{key}]" if key and key != c.name else ""),
                key=f"queue_btn_{k}", shortcut=key, width="stretch",
                type="primary" if img.label == c.name else "secondary",
                help=c.description or None,
                on_click=_queue_label, args=(ws, dataset, img.id, img.label, c.name))
        p, n = st.columns(2)
        p.button("← Previous", key="queue_prev", shortcut="Left", width="stretch",
                 on_click=_queue_move, args=(ws, dataset, img.id, False))
        n.button("Next →", key="queue_next", shortcut="Right", width="stretch",
                 on_click=_queue_move, args=(ws, dataset, img.id, True))
        st.caption("Keys: " + ", ".join(f"{k} = {n}" for n, k in zip(names, keys) if k)
                   + " · ← / → previous and next")


def _queue_label(ws, dataset, image_id: int, expected: str | None, label: str) -> None:
    try:
        R.relabel_image(ws, dataset, image_id, label, expected=expected, user=current_user())
    except ImageLabError as exc:
        _flash("warning" if isinstance(exc, LabelConflict) else "error", str(exc))
        return
    st.session_state.setdefault(f"queue_done_{dataset}", set()).add(image_id)
    _flash("success", f"Saved: #{image_id} is {label}.")
    if st.session_state.get("queue_auto", True):
        _queue_move(ws, dataset, image_id, True)


def _queue_move(ws, dataset, image_id: int, forward: bool) -> None:
    done = st.session_state.setdefault(f"queue_done_{dataset}", set())
    nxt = queue_neighbour(ws, dataset, image_id, forward=forward, also=done)
    if nxt is None:
        _flash("info", "That was the last image of the queue." if forward else "This is the first image.")
        if forward:  # wrap around to the first unlabelled image left
            nxt = queue_neighbour(ws, dataset, 0, forward=True)
    if nxt is not None:
        st.session_state[f"queue_cur_{dataset}"] = nxt


# -- history ----------------------------------------------------------------------------------

def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _events_frame(events) -> pd.DataFrame:
    return pd.DataFrame([{"version": e.version, "when": _when(e.created_at), "who": e.user,
                          "action": f"#{e.action_id} {e.kind}", "image": f"#{e.image_id}",
                          "old": show_label(e.old_label), "new": show_label(e.new_label),
                          "undone": "yes" if e.undone else ""} for e in events],
                        columns=["version", "when", "who", "action", "image", "old", "new", "undone"])


def history_view(ws: Workspace, dataset: str) -> None:
    actions = H.list_actions(ws, dataset, limit=30)
    last = next((a for a in actions if a.undone_by is None and a.kind not in H.NOT_UNDOABLE), None)
    if last is not None:
        st.button(f"Undo #{last.id}: {md_escape(last.description)}", key="undo_last", type="primary",
                  on_click=lambda a=last.id: _edit(H.undo_last_action, ws, dataset, expected_action=a,
                                                   ok=f"Undone #{a}"))
    else:
        st.caption("Nothing to undo.")
    st.subheader("Actions")
    st.table(pd.DataFrame([{"action": f"#{a.id}", "kind": a.kind, "when": _when(a.created_at),
                            "who": a.user, "labels changed": a.label_events,
                            "other changes": a.other_events,
                            "label version": str(a.label_version or ""),
                            "undone by": f"#{a.undone_by}" if a.undone_by else "",
                            "description": a.description} for a in actions]))
    st.subheader("Revert to an earlier label version")
    versions = sorted({a.label_version for a in actions if a.label_version}, reverse=True)
    if versions:
        st.selectbox("Label version", versions, key="revert_version",
                     format_func=lambda v: f"{v} (after action "
                     f"#{next(a.id for a in actions if a.label_version == v)})")
        st.button("Revert labels to this version", key="revert",
                  on_click=lambda: _edit(H.revert_to_version, ws, dataset,
                                         st.session_state.revert_version, ok="Reverted"))
    st.subheader("History of a class or an image")
    names = [c.name for c in C.list_classes(ws, dataset)]
    h1, h2 = st.columns(2)
    cls = h1.selectbox("Class", [ALL] + names, key="hist_class")
    image = h2.number_input("Image id (0: any)", min_value=0, value=0, step=1, key="hist_image")
    events = H.label_history(ws, dataset, image_id=int(image) or None,
                             class_name=None if cls == ALL else cls, limit=100)
    st.table(_events_frame(events))


# -- label review ---------------------------------------------------------------------------

def review_queue(ws: Workspace, dataset: str) -> None:
    st.subheader("Suspected label errors")
    runs = Q.prediction_runs(ws, dataset)
    if not runs:
        st.info("Ranking suspected label errors needs a finished training run of this dataset "
                "with held-out predictions (runs/<run id>/predictions_val.npz). Train a model "
                "on the Train page, then come back.")
    else:
        run_ids = [r for r, _ in runs]
        run_id = st.selectbox("Run", run_ids, key="review_run")
        path = dict(runs)[run_id]
        order = st.radio("Rank by", ["self_confidence", "margin"], horizontal=True, key="review_order",
                         format_func=lambda o: {"self_confidence": "p(given label)",
                                                "margin": "margin"}[o])
        try:
            ranking = Q.rank_run(ws, dataset, run_id, path, order=order)
        except ImageLabError as exc:
            st.error(str(exc))
            ranking = None
        if ranking is not None:
            st.caption(f"Predictions from {Q.SOURCES[ranking.source]}: images the model did not "
                       f"train on. {ranking.num_scored:,} scored, {len(ranking.suspects):,} suspected.")
            for s in ranking.suspects[:10]:
                img = get_image(ws, dataset, s.image_id)
                if img is None:
                    continue
                a, b = st.columns([1, 3])
                if img.thumb.exists():
                    a.image(str(img.thumb), width=96)
                b.text(f"#{s.image_id}  given: {s.given}  suggested: {s.suggested}\n"
                       f"p(given) {s.self_confidence:.3f} · margin {s.margin:+.3f} · "
                       f"p(suggested) {s.suggested_confidence:.3f}")
                x, y, z = b.columns(3)
                x.button(f"Accept {md_escape(s.suggested)}", key=f"rv_acc_{s.image_id}",
                         on_click=lambda s=s: _edit(Q.accept_suggestion, ws, dataset, s.image_id,
                                                    s.suggested, expected=s.given, run_id=run_id,
                                                    ok=f"Saved: #{s.image_id} is now {s.suggested}"))
                y.button("Keep current label", key=f"rv_keep_{s.image_id}",
                         on_click=lambda s=s: _edit(Q.keep_label, ws, dataset, s.image_id,
                                                    run_id=run_id, ok=f"Kept #{s.image_id}"))
                z.button("Exclude from training", key=f"rv_exc_{s.image_id}",
                         on_click=lambda s=s: _edit(Q.exclude_from_training, ws, dataset, s.image_id,
                                                    run_id=run_id, ok=f"Excluded #{s.image_id}"))
    st.subheader("Duplicates with different labels")
    groups = Q.conflicting_duplicates(ws, dataset)
    if not groups:
        st.caption("No identical or nearly identical images carry different labels.")
        return
    st.table(pd.DataFrame([{"kind": "identical" if g.exact else "near-identical",
                            "images": ", ".join(f"#{i}" for i in g.image_ids),
                            "labels": ", ".join(show_label(x) for x in g.labels)} for g in groups[:50]]))
    st.caption("Open an image in the gallery's detail view to fix its label.")
