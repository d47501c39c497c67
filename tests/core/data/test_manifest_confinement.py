"""A manifest fetched from a URL names only URLs: it never reads a file on this machine.

A real http.server on loopback (the only address tests may reach) serves the manifests;
the secret file each test writes must never reach the workspace. Also: deeply nested
JSON manifests are a clear error, and an import that finds no image leaves nothing.
"""

from __future__ import annotations

import json
import secrets

import pytest

from core.data.net import ALLOW_ENV
from core.data.sources import import_source
from core.data.sources.manifest import parse_manifest
from core.errors import ImageLabError
from tests.core.data.corpus import png_bytes


@pytest.fixture
def secret(tmp_path):
    """A real PNG on this machine with a marker appended: if any row read it, its bytes
    (the marker) would be stored in the workspace."""
    marker = b"SECRET-" + secrets.token_hex(16).encode()
    path = tmp_path / "private" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(png_bytes(77) + marker)
    return path, marker


@pytest.fixture
def manifest_server(secret, monkeypatch, serve_routes):
    """Serves ``/data/list.csv`` and ``/data/list.json``; both name the secret by an
    absolute path, a ``~`` path, a ``file://`` URL and ``..`` paths, and two good images
    by relative URLs. ``/secret.png`` (what ``../secret.png`` would reach) is served too,
    so refusing it is not mere luck of a 404."""
    path, marker = secret
    monkeypatch.setenv(ALLOW_ENV, "1")
    monkeypatch.setenv("HOME", str(path.parent))  # "~/secret.png" names the secret
    csv_rows = ["path,url,label",
                f"{path},,cat",
                ",file://{},cat".format(path),
                "~/secret.png,,cat",
                "../secret.png,,cat",
                ",..%2Fsecret.png,cat",
                ",img/good.png,dog",
                "img/good2.png,,dog"]
    json_rows = [{"path": str(path), "label": "cat"}, {"url": path.as_uri(), "label": "cat"},
                 {"path": "../secret.png", "label": "cat"}, {"url": "img/good.png", "label": "dog"},
                 {"path": {"nested": ["x"]}, "label": "dog"}]
    return serve_routes({
        "/data/list.csv": ("text/csv", ("\n".join(csv_rows) + "\n").encode()),
        "/data/list.json": ("application/json", json.dumps(json_rows).encode()),
        "/data/img/good.png": ("image/png", png_bytes(1)),
        "/data/img/good2.png": ("image/png", png_bytes(2)),
        "/secret.png": ("image/png", path.read_bytes()),
    })


def _assert_never_stored(ws, marker: bytes):
    for f in ws.root.rglob("*"):
        if f.is_file():
            assert marker not in f.read_bytes(), f"the secret reached {f}"


def test_url_csv_manifest_imports_urls_and_reports_local_rows(workspace, manifest_server, secret):
    report = import_source(workspace, f"{manifest_server}/data/list.csv", "remote")
    assert report.added == 2 and report.classes == ["dog"]
    reasons = {s.path.split(": ", 1)[1]: s.reason for s in report.skipped}
    path, marker = secret
    assert "a local path: not read" in reasons[str(path)]
    assert "a file: URL: not read" in reasons[path.as_uri()]
    assert "a local path: not read" in reasons["~/secret.png"]
    assert "'..'" in reasons["../secret.png"] and "'..'" in reasons["..%2Fsecret.png"]
    assert len(report.skipped) == 5  # every refused row is listed, none dropped silently
    _assert_never_stored(workspace, marker)


def test_url_json_manifest_is_confined_the_same_way(workspace, manifest_server, secret):
    report = import_source(workspace, f"{manifest_server}/data/list.json", "remote")
    assert report.added == 1
    reasons = [s.reason for s in report.skipped]
    assert sum("not read" in r for r in reasons) == 2
    assert sum("'..'" in r for r in reasons) == 1
    assert any("a list or an object, not text" in r for r in reasons)
    _assert_never_stored(workspace, secret[1])


def test_deeply_nested_json_manifest_is_a_clear_error(workspace, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ImageLabError, match="nested too deeply"):
        parse_manifest(deep, "deep.json")
    f = tmp_path / "deep.json"
    f.write_text(deep)
    with pytest.raises(ImageLabError, match="nested too deeply"):
        import_source(workspace, str(f), "deep")
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0


def test_a_folder_with_no_image_is_an_error_that_leaves_nothing(workspace, tmp_path):
    src = tmp_path / "notes"
    (src / "cat").mkdir(parents=True)
    for i in range(3):
        (src / "cat" / f"{i}.txt").write_text("not an image")
    with pytest.raises(ImageLabError, match="no images found") as exc:
        import_source(workspace, str(src), "notes")
    assert "3 files skipped" in str(exc.value) and "nothing was imported" in str(exc.value)
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM import_reports").fetchone()[0] == 0
    assert not workspace.images_dir.exists() or list(workspace.images_dir.iterdir()) == []
