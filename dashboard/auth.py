"""Network mode: a password gate when the app is reachable beyond this machine.

The app binds to 127.0.0.1 by default. When it is bound to any other address,
every page asks for a name and the password (from ``$IMAGELAB_PASSWORD`` or
``password`` in ``.streamlit/secrets.toml``), compared in constant time. The
name signs label events. Without a configured password a non-local app refuses
to serve at all: ``dashboard/launch.py`` refuses to start it, and this gate
stops every page as a second line of defence. Failed sign-ins back off per client
address (``dashboard/login_throttle.py``).
"""

from __future__ import annotations

import hmac
import os

import streamlit as st

from dashboard.login_throttle import LoginThrottle

LOCAL_ADDRESSES = {"127.0.0.1", "localhost", "::1"}


def configured_password() -> str | None:
    env = os.environ.get("IMAGELAB_PASSWORD")
    if env:
        return env
    try:
        value = st.secrets.get("password")
    except Exception:  # no secrets file, or a broken one: treat as "not set"
        return None
    return str(value) if value else None


def is_network_mode() -> bool:
    address = st.get_option("server.address") or ""
    return address not in LOCAL_ADDRESSES


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_login() -> str:
    """Return the signed-in user name; on a local app, the OS user."""
    if not is_network_mode():
        return os.environ.get("IMAGELAB_USER") or _os_user()
    expected = configured_password()
    if not expected:
        st.error("This app is exposed on a network but no password is set. Set "
                 "IMAGELAB_PASSWORD or `password` in .streamlit/secrets.toml and restart.")
        st.stop()
    if st.session_state.get("auth_user"):
        return st.session_state["auth_user"]
    st.title("ImageLab")
    with st.form("login"):
        name = st.text_input("Your name", help="Recorded with the label changes you make.")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        throttle, address = login_throttle(), _client_address()
        wait = throttle.wait_s(address)
        if wait > 0:
            st.error(f"Too many failed sign-ins: try again in {wait:.0f} s.")
            st.stop()
        if password_matches(password, expected) and name.strip():
            throttle.succeeded(address)
            st.session_state["auth_user"] = name.strip()[:64]
            st.rerun()
        throttle.failed(address)
        st.error("Wrong password, or no name given.")
    st.stop()
    raise AssertionError("unreachable")


@st.cache_resource
def login_throttle() -> LoginThrottle:
    """The server's one sign-in throttle, shared by every session."""
    return LoginThrottle()


def _client_address() -> str:
    try:
        address = st.context.ip_address
    except Exception:
        address = None
    # no browser session (AppTest gives no real address): one shared key
    return address if isinstance(address, str) and address else "unknown"


def current_user() -> str:
    return st.session_state.get("auth_user") or os.environ.get("IMAGELAB_USER") or _os_user()


def _os_user() -> str:
    try:
        import getpass
        return getpass.getuser()
    except Exception:
        return "local"
