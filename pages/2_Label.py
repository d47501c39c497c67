"""Label: fix labels where they are found, with history and undo.

Classes · Gallery (filter, select, bulk edit, image detail) · Queue (unlabelled
images ordered by an active-learning strategy, one key per class, Enter accepts the
model's suggestion; "Does the queue pay?") · History (undo, revert) · Review (suspected
errors).
"""

import streamlit as st

from core.data.catalog import dataset_info, list_datasets
from core.labels.versions import VERSION_HELP, label_version_info
from dashboard import labelling
from dashboard.page import page_setup

ws = page_setup("Label", "🏷️")
st.title("Label")

datasets = [d.name for d in list_datasets(ws)]
if not datasets:
    st.info("No datasets yet: import one on the Data page first.")
    st.stop()

top1, top2 = st.columns([2, 3])
dataset = top1.selectbox("Dataset", datasets, key="label_dataset")
info = dataset_info(ws, dataset)
top2.caption(f"{info.num_images:,} images · {len(info.classes)} classes · "
             f"{sum(info.unlabelled.values()):,} unlabelled · {info.excluded:,} excluded · "
             f"labels {label_version_info(ws, dataset).text}", help=VERSION_HELP)

labelling.show_flash()
mode = st.radio("Mode", ["Gallery", "Queue", "Classes", "History", "Review"], horizontal=True,
                key="label_mode", label_visibility="collapsed")
if mode == "Gallery":
    labelling.gallery(ws, dataset)
elif mode == "Queue":
    labelling.unlabelled_queue(ws, dataset)
    labelling.queue_proof(ws, dataset)
elif mode == "Classes":
    labelling.class_manager(ws, dataset)
elif mode == "History":
    labelling.history_view(ws, dataset)
else:
    labelling.review_queue(ws, dataset)
