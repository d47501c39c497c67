"""Fine-tune: not built yet; the page says so plainly."""

from dashboard.setup import not_built_yet, page_setup
import streamlit as st

page_setup("Fine-tune", "🎯")
st.title("Fine-tune")
not_built_yet("Fine-tuning", [
    "start from a run in this workspace, ImageNet weights or a checkpoint file",
    "freeze and unfreeze layer groups, with per-group learning rates",
    "find a learning rate with the range test",
    "compare against training from scratch on the same budget",
])
