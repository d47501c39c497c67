"""Demo: not built yet; the page says so plainly."""

from dashboard.setup import not_built_yet, page_setup
import streamlit as st

page_setup("Demo", "🎬")
st.title("Demo")
not_built_yet("The demo and deployment", [
    "predict on uploads, webcam shots or URLs, with Grad-CAM",
    "answer \"unknown\" below a confidence threshold",
    "export checked ONNX and torch.export models",
    "serve predictions over HTTP and watch them",
])
