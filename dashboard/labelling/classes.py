"""The Label page's Classes mode: the class table, and add, rename, describe,
merge and delete, each one action through ``dashboard.label_actions``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.labels import classes as label_classes
from core.store.workspace import Workspace
from dashboard.label_actions import NO_LABEL, chosen_label, run_edit


def class_manager(ws: Workspace, dataset: str) -> None:
    """The classes of ``dataset`` with their counts per split, and the class edits."""
    classes = label_classes.list_classes(ws, dataset)
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
        st.button("Add class", key="cls_add", on_click=_edit,
                  args=(label_classes.add_class, ws, dataset, "cls_add_name", "cls_add_desc"),
                  kwargs={"ok": "Class added"})
    if not names:
        return
    with rename:
        st.selectbox("Class", names, key="cls_ren_old")
        st.text_input("New name", key="cls_ren_new")
        st.button("Rename", key="cls_ren", on_click=_edit,
                  args=(label_classes.rename_class, ws, dataset, "cls_ren_old", "cls_ren_new"),
                  kwargs={"ok": "Class renamed"})
    with describe:
        st.selectbox("Class", names, key="cls_desc_name")
        st.text_area("Description", key="cls_desc_text",
                     placeholder="What belongs in this class, and what does not")
        st.button("Save description", key="cls_desc", on_click=_edit,
                  args=(label_classes.set_description, ws, dataset, "cls_desc_name",
                        "cls_desc_text"),
                  kwargs={"ok": "Description saved"})
    with merge:
        st.selectbox("Merge this class…", names, key="cls_merge_src")
        st.selectbox("…into this class", names, key="cls_merge_dst", index=min(1, len(names) - 1))
        st.button("Merge", key="cls_merge", on_click=_edit,
                  args=(label_classes.merge_classes, ws, dataset, "cls_merge_src", "cls_merge_dst"),
                  kwargs={"ok": "Classes merged"})
    with delete:
        st.selectbox("Class to delete", names, key="cls_del_name")
        st.selectbox("Its images", [NO_LABEL] + names, key="cls_del_to",
                     format_func=lambda n: "become unlabelled" if n == NO_LABEL else f"move to {n}")
        st.button("Delete class", key="cls_del", on_click=_delete, args=(ws, dataset))


# Class edits name classes, not image labels: they read the names typed or picked
# when the button is clicked (core checks that the classes exist).

def _edit(edit, ws, dataset, *keys: str, ok: str) -> None:
    """Run ``edit(ws, dataset, *values)``, the values read from the widgets ``keys`` now."""
    run_edit(edit, ws, dataset, *(st.session_state[k] for k in keys), ok=ok)


def _delete(ws, dataset) -> None:
    run_edit(label_classes.delete_class, ws, dataset, st.session_state.cls_del_name,
             reassign_to=chosen_label("cls_del_to"), ok="Class deleted")
