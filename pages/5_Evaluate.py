"""Evaluate: not built yet; the page says so plainly."""

from dashboard.setup import not_built_yet, page_setup
import streamlit as st

page_setup("Evaluate", "📊")
st.title("Evaluate")
not_built_yet("Evaluation", [
    "see per-class precision, recall and F1",
    "click a confusion-matrix cell to see its images, and fix their labels",
    "check calibration, ROC and precision-recall curves",
    "compare runs side by side",
])
