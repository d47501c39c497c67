"""Open a page the way a user does: the home page first, then the page (AppTest)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


def open_page(path: str, timeout: int = 120, *, check: bool = False) -> AppTest:
    """Run the home page, switch to ``path`` (a ``pages/…`` file, or the home page
    itself) and run it; ``check``: fail on any exception the page raised."""
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=timeout)
    at.run()
    if path != "streamlit_app.py":
        at.switch_page(path)
        at.run()
    if check:
        assert not at.exception, [e.message for e in at.exception]
    return at
