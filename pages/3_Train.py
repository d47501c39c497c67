"""Train: pick a dataset and a model, set options, press Train, watch the run live.

Runs are background processes; everything shown is read from the workspace, so a reload
or another tab sees the same runs.
"""

import streamlit as st

from core.data.catalog import list_datasets
from core.errors import ImageLabError
from core.training import jobs
from dashboard.label_actions import show_error
from dashboard.page import page_setup
from dashboard.run_view import runs_table, watch_runs
from dashboard.training import augmentation_preview, epoch_estimate, options_form, photo_hint

ws = page_setup("Train", "🏋️")
st.title("Train")
st.caption("Defaults adapt to the dataset: press **Train** for a strong model, or tune below. "
           "Runs keep going when you close the tab.")

datasets = [d.name for d in list_datasets(ws)]
if not datasets:
    st.info("The workspace has no datasets yet: import one on the Data page.")
    st.page_link("pages/1_Data.py", label="Go to Data")
    st.stop()

left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Setup")
    dataset = st.selectbox("Dataset", datasets, key="train_dataset")
    photo_hint(ws, dataset)
    cfg = options_form(ws, dataset)
    if cfg is not None:
        epoch_estimate(ws, cfg)
        if st.button("Train", type="primary", key="train_start", width="stretch"):
            try:
                run = jobs.start_run(ws, cfg)
                st.session_state["train_watch"] = run.id
                st.toast(f"Run {run.id} {run.status}.")
            except ImageLabError as exc:
                show_error(exc)

with right:
    if cfg is not None:
        with st.expander("Augmentation preview", expanded=False):
            augmentation_preview(ws, cfg)
    st.subheader("Run")
    watch_runs(ws)

st.subheader("Runs")
runs_table(ws)
