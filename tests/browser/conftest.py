"""A real ``streamlit run`` server and Debian's chromium, driven by Playwright.

These tests never skip: if chromium or the server cannot start, they fail with
the reason (``make test`` installs chromium first).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_workspace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
ARTIFACTS = REPO / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    def __init__(self, home: Path, port: int | None = None, launcher: bool = False):
        """``launcher=True`` starts it exactly as ``make run`` does (``dashboard.launch``)."""
        self.home, self.port, self.launcher = home, port or free_port(), launcher
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"streamlit-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "StreamlitServer":
        env = dict(os.environ, IMAGELAB_HOME=str(self.home), PYTHONPATH=str(REPO))
        log = open(self.log_path, "wb")
        cmd = ([sys.executable, "-m", "dashboard.launch", "--port", str(self.port)]
               if self.launcher else
               [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                "--server.port", str(self.port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false"])
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not answer /_stcore/health in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def server(_samples_master, tmp_path):
    """A fresh streamlit server on a private copy of the sample workspace."""
    yield from served_copy(_samples_master, tmp_path)


def served_copy(master: Path, tmp_path: Path, **extra):
    """For a fixture to ``yield from``: a streamlit server on a private copy of the workspace
    ``master`` (``extra`` set as attributes), stopped at teardown."""
    home = tmp_path / "ws"
    copy_workspace(master, home)
    srv = StreamlitServer(home).start()
    for name, value in extra.items():
        setattr(srv, name, value)
    try:
        yield srv
    finally:
        srv.stop()


# Opening a page by direct URL makes the front end probe these before it finds
# the server root; they log two harmless 404s (see GUIDE.md). Nothing else is allowed.
_KNOWN_404_SUFFIXES = ("/_stcore/health", "/_stcore/host-config")


class PageWatcher:
    """Collects console errors and failed requests that a test must not see."""

    def __init__(self, page):
        self.errors: list[str] = []
        self._ignored_urls: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _on_console(self, msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if "404" in msg.text and url.endswith(_KNOWN_404_SUFFIXES) and url.count("/_stcore/") == 1 \
                and not url.startswith(tuple()):
            self._ignored_urls.append(url)
            return
        self.errors.append(f"console: {msg.text} ({url})")


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Streamlit's own e2e waits: script finished, no skeletons left."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=timeout)
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout)


def open_app(browser, url: str, *, width: int = 1400, height: int = 1200,
             timeout: float = 60_000):
    """A new page on ``url``, watched for browser errors, once the app has settled:
    (page, watcher)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    watcher = PageWatcher(page)
    page.goto(url)
    # Before the first script run starts, the app reports "notRunning" with nothing drawn:
    # wait for the first element, so the settle below waits for the run that draws the page.
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']",
                           timeout=timeout)
    wait_for_app(page, timeout=timeout)
    return page, watcher


def import_into_new_dataset(page, panel, button_name: str, dataset: str) -> None:
    """In an open import tab: name the new dataset, then press its (enabled) button."""
    name = panel.get_by_label("New dataset name")
    name.fill(dataset)
    name.press("Enter")
    wait_for_app(page)
    button = panel.get_by_role("button", name=button_name, exact=True)
    page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=30_000)
    button.click()


def assert_no_exception_box(page) -> None:
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()


def screenshot(page, name: str, folder: Path | None = None) -> Path:
    folder = folder or ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def journey_page(browser, folder: Path, *, whole_page: bool = False):
    """A 1500×1200 page for a journey test whose pictures go to ``folder`` (emptied first):
    (page, watcher, main area, shot). ``shot(name)`` checks for an exception box and saves
    ``NN-name.png``, numbered in order; with ``whole_page`` the window is first made as
    tall as the page (capped at 3200 px), since Streamlit scrolls inside its main area and
    a full-page picture would show one screen."""
    shutil.rmtree(folder, ignore_errors=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    watcher = PageWatcher(page)
    main = page.locator("[data-testid='stMain']")
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        assert_no_exception_box(page)
        if whole_page:
            tall = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\")"
                                 ".scrollHeight")
            page.set_viewport_size({"width": 1500, "height": max(1200, min(int(tall) + 40, 3200))})
            page.wait_for_timeout(500)
        screenshot(page, f"{next(step):02d}-{name}", folder)
        if whole_page:
            page.set_viewport_size({"width": 1500, "height": 1200})

    return page, watcher, main, shot


@pytest.fixture
def trained_server(_trained_master, tmp_path):
    """A fresh streamlit server on a copy of the workspace with one finished run."""
    master, run_id = _trained_master
    yield from served_copy(master, tmp_path, run_id=run_id)
