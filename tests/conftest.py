"""Shared fixtures: real workspaces on disk, filled with real sample images."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from core.data.samples import import_sample
from core.store.workspace import Workspace, open_workspace
from tests.core.data.corpus import png_bytes, write_imagefolder, zip_with

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace in a temp folder, also set as $IMAGELAB_HOME."""
    root = tmp_path / "ws"
    monkeypatch.setenv("IMAGELAB_HOME", str(root))
    return open_workspace(root)


@pytest.fixture(scope="session")
def _samples_master(tmp_path_factory):
    """Built once per session: digits + mnist-5k + a small shapes set."""
    root = tmp_path_factory.mktemp("samples") / "ws"
    ws = open_workspace(root)
    import_sample(ws, "sample:digits")
    import_sample(ws, "sample:mnist-5k")
    import_sample(ws, "sample:shapes", count=600, size=32)
    return root


@pytest.fixture
def sample_workspace(_samples_master, tmp_path, monkeypatch):
    """A private copy of the sample workspace, set as $IMAGELAB_HOME."""
    return private_workspace(_samples_master, tmp_path, monkeypatch)


def private_workspace(master: Path, tmp_path: Path, monkeypatch) -> Workspace:
    """A private copy of the workspace ``master`` under ``tmp_path``, set as $IMAGELAB_HOME."""
    root = tmp_path / "ws"
    copy_workspace(master, root)
    monkeypatch.setenv("IMAGELAB_HOME", str(root))
    return open_workspace(root)


# Stored images and thumbnails are write-once files named by content (an import writes a
# new file and renames it into place), so a test's private copy of a master workspace
# hard-links them instead of copying ~60 MB per test; the database, caches and runs,
# which tests change, are copied.
_WRITE_ONCE = ("images", "thumbs")


def copy_workspace(master: Path, root: Path) -> Path:
    """A private copy of the workspace ``master`` at ``root`` (write-once files linked)."""
    root.mkdir(parents=True)
    for entry in master.iterdir():
        if entry.name in _WRITE_ONCE and entry.is_dir():
            shutil.copytree(entry, root / entry.name, copy_function=_link_or_copy)
        elif entry.is_dir():
            shutil.copytree(entry, root / entry.name)
        else:
            shutil.copy2(entry, root / entry.name)
    return root


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:          # another file system, or links not allowed: a real copy
        shutil.copy2(src, dst)


def python_env(home: Path) -> dict:
    env = dict(os.environ)
    env["IMAGELAB_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="session")
def _trained_master(_samples_master, tmp_path_factory):
    """The sample workspace plus one small finished digits run (trained for real)."""
    from core.training.config import TrainConfig
    from core.training.run import train_run
    from core.training.runs import create_run
    root = tmp_path_factory.mktemp("trained") / "ws"
    copy_workspace(_samples_master, root)
    ws = open_workspace(root)
    run = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=4, batch_size=64))
    summary = train_run(ws, run.id)
    assert summary["status"] == "finished", summary
    return root, run.id


@pytest.fixture
def trained_workspace(_trained_master, tmp_path, monkeypatch):
    """A private copy of the trained workspace; returns (workspace, run id)."""
    master, run_id = _trained_master
    return private_workspace(master, tmp_path, monkeypatch), run_id


# A real HTTP server on loopback (the only address tests may reach), shared by the URL
# source, manifest and Demo URL-box tests. Each server gets its own handler class, so
# its routes are its own.
class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}   # path -> (content type, bytes) | ("redirect", location) | ("forever", None)

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404, "Not Found")
            return
        kind, payload = route
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", payload)
            self.end_headers()
        elif kind == "forever":
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\0" * 1024)
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                return
        else:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)


@pytest.fixture
def serve_routes():
    """A factory: ``serve_routes(routes)`` starts an HTTP server on 127.0.0.1 that serves
    ``routes`` (see ``_Handler``) and returns its base URL; each one stops at teardown."""
    servers = []

    def serve(routes: dict) -> str:
        handler = type("_Routes", (_Handler,), {"routes": routes})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server(tmp_path, serve_routes):
    write_imagefolder(tmp_path / "src", per_class=3)
    archive = zip_with(tmp_path / "pets.zip", [(p.relative_to(tmp_path / "src").as_posix(),
                                                p.read_bytes())
                                               for p in sorted((tmp_path / "src").rglob("*.png"))])
    data = archive.read_bytes()
    base = serve_routes({
        "/pets.zip": ("application/zip", data),
        "/page.html": ("text/html", b"<!DOCTYPE html><html><body>Download here</body></html>"),
        "/forever.zip": ("forever", None),
        "/moved": ("redirect", "/pets.zip"),
        "/to-metadata": ("redirect", "http://169.254.169.254/latest/meta-data/"),
        "/img/a.png": ("image/png", png_bytes(1)),
        "/img/b.png": ("image/png", png_bytes(2)),
        "/list.csv": ("text/csv", b"url,label\n/img/a.png,cat\nimg/b.png,dog\n/img/missing.png,dog\n"),
    })
    return base, hashlib.sha256(data).hexdigest()
