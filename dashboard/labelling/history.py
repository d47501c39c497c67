"""The Label page's History mode: undo the last action, the list of actions,
revert to an earlier label version, and the label history of a class or image.

"Undo" carries the action it names, so if another tab acted meanwhile the undo
is refused instead of undoing an action the user never saw.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.labels import classes as label_classes
from core.labels import history as label_history
from core.labels.versions import VERSION_HELP, version_numbers
from core.store.workspace import Workspace
from dashboard.label_actions import edit_button, run_edit
from dashboard.labelling.common import ALL, events_frame, md_escape, when


def history_view(ws: Workspace, dataset: str) -> None:
    """Undo, the actions of ``dataset``, revert, and the per-class/image history."""
    actions = label_history.list_actions(ws, dataset, limit=30)
    last = next((a for a in actions
                 if a.undone_by is None and a.kind not in label_history.NOT_UNDOABLE), None)
    if last is not None:
        edit_button(st, f"Undo #{last.id}: {md_escape(last.description)}",
                    label_history.undo_last_action, ws, dataset, kwargs={"expected_action": last.id},
                    key="undo_last", ok=f"Undone #{last.id}", type="primary")
    else:
        st.caption("Nothing to undo.")
    st.subheader("Actions")
    numbers = version_numbers(ws, dataset, [a.label_version for a in actions if a.label_version])
    st.table(pd.DataFrame([{"action": f"#{a.id}", "kind": a.kind, "when": when(a.created_at),
                            "who": a.user, "labels changed": a.label_events,
                            "other changes": a.other_events,
                            "label version": f"v{numbers[a.label_version]}"
                            if a.label_version else "",
                            "undone by": f"#{a.undone_by}" if a.undone_by else "",
                            "description": a.description} for a in actions]))
    st.subheader("Revert to an earlier label version")
    versions = sorted({a.label_version for a in actions if a.label_version}, reverse=True)
    if versions:
        st.selectbox("Label version", versions, key="revert_version", help=VERSION_HELP,
                     format_func=lambda v: f"v{numbers[v]} (after action "
                     f"#{next(a.id for a in actions if a.label_version == v)})")
        st.button("Revert labels to this version", key="revert", on_click=_revert,
                  args=(ws, dataset))
    st.subheader("History of a class or an image")
    names = [c.name for c in label_classes.list_classes(ws, dataset)]
    h1, h2 = st.columns(2)
    cls = h1.selectbox("Class", [ALL] + names, key="hist_class")
    image = h2.number_input("Image id (0: any)", min_value=0, value=0, step=1, key="hist_image")
    events = label_history.label_history(ws, dataset, image_id=int(image) or None,
                                         class_name=None if cls == ALL else cls, limit=100)
    st.table(events_frame(events))


def _revert(ws, dataset) -> None:
    """Revert to the version picked (a version names a state, not an expectation)."""
    run_edit(label_history.revert_to_version, ws, dataset, st.session_state.revert_version,
             ok="Reverted")
