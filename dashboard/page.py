"""The one call every page starts with: page config, workspace, sidebar footer."""

from __future__ import annotations

import streamlit as st

from core.device import DeviceInfo, describe_device
from core.errors import ImageLabError
from core.store.workspace import Workspace, default_home, open_workspace
from dashboard.auth import is_network_mode, require_login


@st.cache_resource(show_spinner=False)
def _workspace(root: str) -> Workspace:
    return open_workspace(root)


@st.cache_resource(show_spinner=False)
def device_info() -> DeviceInfo:
    return describe_device()


def page_setup(title: str, icon: str = "🧪", *, sidebar: str = "auto") -> Workspace:
    """Configure the page and return the workspace, or stop with a clear error.

    ``sidebar="collapsed"`` starts with the sidebar hidden (the Demo's presenter mode).
    """
    st.set_page_config(page_title=f"{title} · ImageLab", page_icon=icon, layout="wide",
                       initial_sidebar_state=sidebar)
    user = require_login()
    try:
        ws = _workspace(str(default_home().absolute()))
    except ImageLabError as exc:
        st.error(f"The workspace cannot be opened: {exc}")
        st.stop()
    with st.sidebar:
        navigation()
        st.divider()
        st.caption(f"Signed in as {user}" if is_network_mode() else f"User: {user}")
        st.caption(f"Workspace: `{ws.root}`")
        st.caption(f"Device: {device_info().label}")
    return ws


# Material icons ship with Streamlit's front end, so they render without emoji fonts.
PAGES = [("streamlit_app.py", "Home", ":material/home:"),
         ("pages/1_Data.py", "Data", ":material/photo_library:"),
         ("pages/7_Explore.py", "Explore", ":material/scatter_plot:"),
         ("pages/2_Label.py", "Label", ":material/label:"),
         ("pages/3_Train.py", "Train", ":material/model_training:"),
         ("pages/4_Fine-tune.py", "Fine-tune", ":material/tune:"),
         ("pages/5_Evaluate.py", "Evaluate", ":material/analytics:"),
         ("pages/6_Demo.py", "Demo", ":material/slideshow:")]


def navigation() -> None:
    """Our own page list (Streamlit's would call the home page "streamlit app")."""
    for path, label, icon in PAGES:
        st.page_link(path, label=label, icon=icon)

