"""Label: not built yet; the page says so plainly."""

from dashboard.setup import not_built_yet, page_setup
import streamlit as st

page_setup("Label", "🏷️")
st.title("Label")
not_built_yet("The label editor", [
    "add, rename, merge and delete classes",
    "relabel one image, or many at once from a filtered selection",
    "work through the unlabelled queue with a big button and a keyboard key per class",
    "see the history of every label, undo the last action, revert to any point",
    "review suspected label errors ranked by a trained model",
])
