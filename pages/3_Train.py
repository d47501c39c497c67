"""Train: not built yet; the page says so plainly."""

from dashboard.setup import not_built_yet, page_setup
import streamlit as st

page_setup("Train", "🏋️")
st.title("Train")
not_built_yet("Training", [
    "choose a dataset, a model preset and the device",
    "set epochs, batch size, learning rate and augmentation on sliders",
    "start, stop and resume runs that keep going when you close the tab",
    "watch live loss and accuracy curves",
])
