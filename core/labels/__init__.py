"""Labels: classes, relabelling, history, undo/revert, label versions, import/export,
and label-quality ranking.

Every label change goes through ``core.labels.edits.apply_changes``: one
``BEGIN IMMEDIATE`` transaction that checks the labels the caller expects to
replace, appends one action with its label events (and split/exclusion events),
and updates the images. Nothing here imports streamlit.
"""

from core.labels.common import LabelConflict, current_user

__all__ = ["LabelConflict", "current_user"]
