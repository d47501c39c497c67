"""The network-mode path policy (core/store/path_policy.py) and its use by the importers."""

from __future__ import annotations

import os
import sqlite3

import pytest

from core.data.sources import ImportOptions, import_source
from core.errors import ImageLabError
from core.store.path_policy import OUTSIDE_ROOTS, allowed_roots, check_server_path
from tests.core.data.corpus import png_bytes, write_imagefolder


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Two data roots and an outside folder holding a real file."""
    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    for d in (a, b, outside):
        d.mkdir()
    (outside / "secret.png").write_bytes(png_bytes(1))
    monkeypatch.setenv("IMAGELAB_DATA_ROOTS", f"{a}{os.pathsep}{b}{os.pathsep}")
    return a, b, outside


def refused(path) -> str:
    with pytest.raises(ImageLabError) as info:
        check_server_path(path, network=True)
    return str(info.value)


def test_roots_come_from_the_environment(roots, monkeypatch):
    a, b, _ = roots
    assert allowed_roots() == [a.resolve(), b.resolve()]
    monkeypatch.delenv("IMAGELAB_DATA_ROOTS")
    assert allowed_roots() == []


def test_inside_a_root_is_allowed_and_resolved(roots):
    a, b, _ = roots
    assert check_server_path(a, network=True) == a.resolve()
    assert check_server_path(str(b / "new" / "x.png"), network=True) == b.resolve() / "new/x.png"


def test_outside_is_refused_with_one_message_whether_or_not_it_exists(roots, tmp_path):
    a, _, outside = roots
    messages = {refused(p) for p in (outside, outside / "secret.png", outside / "missing.png",
                                     tmp_path / "nowhere", "/etc/passwd", "/", "relative/x",
                                     "~/x", f"{a}/../outside", f"{a}/sub/../sub", f"{a}\x00x", "")}
    assert messages == {OUTSIDE_ROOTS}


def test_a_symlink_escaping_a_root_is_refused(roots):
    a, _, outside = roots
    (a / "link").symlink_to(outside)
    (a / "file-link.png").symlink_to(outside / "secret.png")
    assert refused(a / "link") == OUTSIDE_ROOTS
    assert refused(a / "link" / "secret.png") == OUTSIDE_ROOTS
    assert refused(a / "file-link.png") == OUTSIDE_ROOTS


def test_a_root_prefix_is_not_a_root(roots, tmp_path):
    (tmp_path / "a-evil").mkdir()
    assert refused(tmp_path / "a-evil") == OUTSIDE_ROOTS


def test_no_roots_refuses_everything_in_network_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGELAB_DATA_ROOTS", raising=False)
    assert refused(tmp_path) == OUTSIDE_ROOTS


def test_local_mode_keeps_every_path(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGELAB_DATA_ROOTS", raising=False)
    assert check_server_path(tmp_path / ".." / "x", network=False) == tmp_path / ".." / "x"
    assert str(check_server_path("~/x", network=False)) == os.path.expanduser("~/x")


def test_importers_apply_the_policy_in_network_mode(workspace, roots):
    a, _, outside = roots
    write_imagefolder(a / "flowers", classes=("rose", "tulip"), per_class=2)
    net = ImportOptions(network=True)
    for source in (str(outside), str(outside / "missing"), f"sqlite:///{outside}/x.db",
                   f"sqlite:///{outside}/missing.db"):
        with pytest.raises(ImageLabError) as info:
            import_source(workspace, source, "x", ImportOptions(network=True, query="SELECT 1"))
        assert str(info.value) == OUTSIDE_ROOTS
    for root in (outside / "tv", outside):
        with pytest.raises(ImageLabError, match="data roots"):
            import_source(workspace, "torchvision:MNIST", "x",
                          ImportOptions(network=True, root=str(root)))
    assert not (outside / "tv").exists()
    with pytest.raises(ImageLabError, match="only SQLite files"):
        import_source(workspace, "postgresql://127.0.0.1/x", "x",
                      ImportOptions(network=True, query="SELECT 1"))
    assert import_source(workspace, str(a / "flowers"), "flowers", net).added == 4


def test_sql_rows_naming_files_outside_the_roots_are_skipped_alike(workspace, roots):
    a, _, outside = roots
    (a / "ok.png").write_bytes(png_bytes(2))
    db = a / "pics.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pics (path TEXT, label TEXT)")
        conn.executemany("INSERT INTO pics VALUES (?, ?)",
                         [("ok.png", "x"), (str(outside / "secret.png"), "y"),
                          (str(outside / "missing.png"), "y"), ("../outside/secret.png", "y")])
    conn.close()
    report = import_source(workspace, f"sqlite:///{db}", "pics",
                           ImportOptions(network=True, query="SELECT path, label FROM pics"))
    assert report.added == 1
    assert [s.reason for s in report.skipped] == [OUTSIDE_ROOTS] * 3
