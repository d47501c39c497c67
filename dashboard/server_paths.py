"""Boxes that take a path on the server, under the network-mode policy.

Locally (127.0.0.1) a path box takes any path, as before. In network mode
(``dashboard.auth.is_network_mode``) a signed-in user may name only paths under the
data roots in ``$IMAGELAB_DATA_ROOTS`` (``core.store.path_policy``): with no roots
configured the boxes are hidden, with roots every typed path goes through
``check_server_path``, whose one message never says whether a path exists.
"""

from __future__ import annotations

import streamlit as st

from core.errors import ImageLabError
from core.store.path_policy import ROOTS_ENV, allowed_roots, check_server_path
from dashboard.auth import is_network_mode
from dashboard.label_actions import show_error

HIDDEN_NOTE = ("Paths on the server are off: this app is on a network and no data roots are "
               "set. Uploads still work. To allow folders, start the app with "
               f"{ROOTS_ENV}=/data/one:/data/two (see docs/SECURITY.md).")


def network() -> bool:
    """True when the app is in network mode (path boxes are then confined)."""
    return is_network_mode()


def path_inputs_allowed() -> bool:
    """False in network mode without data roots: every server path box is hidden then."""
    return not network() or bool(allowed_roots())


def hidden_note() -> None:
    """The caption shown where a hidden path box would be."""
    st.caption(HIDDEN_NOTE)


def roots_note() -> None:
    """In network mode, a caption naming the data roots a path must lie under."""
    if network():
        st.caption("On this network app, paths must lie under: "
                   + ", ".join(f"`{r}`" for r in allowed_roots()))


def server_path_input(label: str, *, key: str, help: str | None = None) -> str | None:
    """A text box for a path on the server; the path to use, or None (empty or refused).

    Hidden (with ``hidden_note``) when ``path_inputs_allowed()`` is False; a refused
    path shows the policy's one message.
    """
    if not path_inputs_allowed():
        hidden_note()
        return None
    text = st.text_input(label, key=key, help=help).strip()
    if not text:
        return None
    try:
        return str(check_server_path(text, network()))
    except ImageLabError as exc:
        show_error(exc)
        return None
