"""Trained models for the UI, loaded once and shared (``st.cache_resource``).

The cache key is the checkpoint path plus its modification time and the
calibration file's, so a retrained or recalibrated run is reloaded, and an
unchanged one never is. Cached models are in ``eval()`` mode and never mutated.
"""

from __future__ import annotations

import streamlit as st

from core.inference.predictor import LoadedModel, checkpoint_path, load_run_model
from core.store.run_paths import run_paths
from core.store.workspace import Workspace, open_workspace


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load(root: str, run_id: str, path: str, mtime: float, calibration_mtime: float) -> LoadedModel:
    return load_run_model(open_workspace(root), run_id)


def loaded_model(ws: Workspace, run_id: str) -> LoadedModel:
    path = checkpoint_path(ws, run_id)
    cal = run_paths(ws, run_id).calibration
    return _load(str(ws.root), run_id, str(path), path.stat().st_mtime,
                 cal.stat().st_mtime if cal.exists() else 0.0)
