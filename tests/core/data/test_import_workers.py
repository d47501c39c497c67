"""Large local imports run on worker processes: same result as in-process, bad files
still reported, and a dead worker loses nothing."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from core.data import prepare
from core.data.sources import import_source
from core.store.workspace import open_workspace
from tests.core.data.corpus import jpeg_bytes, png_bytes

N = 320   # above PROCESS_MIN_FILES, so the worker pool is used


def _folder(root, n: int = N):
    for i in range(n):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        data = png_bytes(i, size=(20 + i % 3, 20)) if i % 5 else jpeg_bytes(i)
        (folder / f"{i:04d}.{'png' if i % 5 else 'jpg'}").write_bytes(data)
    (root / "class0" / "broken.png").write_bytes(png_bytes(999)[:60])     # truncated
    (root / "class1" / "notes.jpg").write_text("not an image")
    (root / "class2" / "copy.png").write_bytes(png_bytes(1, size=(21, 20)))  # = 0001.png


def _rows(ws) -> list[tuple]:
    with ws.db() as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT i.original_name, i.sha256, i.width, i.height, i.mode, c.name, i.split, "
            "i.phash, round(i.brightness, 4), round(i.sharpness, 2), round(i.mean_g, 6), i.flags "
            "FROM images i JOIN classes c ON c.id = i.class_id ORDER BY i.original_name")]


def test_workers_give_the_same_dataset_as_in_process(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _folder(src)
    monkeypatch.setenv("IMAGELAB_IMPORT_WORKERS", "2")
    assert prepare.worker_count() == 2
    a = open_workspace(tmp_path / "a")
    report_a = import_source(a, str(src), "d")
    assert prepare._pool is not None and len(prepare._pool._processes) == 2   # it was used
    monkeypatch.setenv("IMAGELAB_IMPORT_WORKERS", "1")
    b = open_workspace(tmp_path / "b")
    report_b = import_source(b, str(src), "d")
    assert report_a.added == report_b.added == N + 1
    assert sorted(s.path for s in report_a.skipped) == ["class0/broken.png", "class1/notes.jpg"]
    assert [s.reason for s in sorted(report_a.skipped, key=lambda s: s.path)] == \
        [s.reason for s in sorted(report_b.skipped, key=lambda s: s.path)]
    assert len(report_a.duplicates) == 1
    assert _rows(a) == _rows(b)
    # the stored files are the sources' bytes (hardlinked), and the cache holds pixels
    with a.db() as conn:
        path, name = conn.execute("SELECT path, original_name FROM images WHERE "
                                  "original_name = 'class3/0003.png'").fetchone()
    assert (a.root / path).read_bytes() == (src / name).read_bytes()
    assert np.load(next(a.cache_dir.rglob("pixels.npy")), mmap_mode="r").std() > 10


def test_a_killed_worker_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGELAB_IMPORT_WORKERS", "2")
    src = tmp_path / "src"
    _folder(src)
    ws = open_workspace(tmp_path / "ws")
    pool = prepare.worker_pool()
    if pool is None:
        pytest.skip("this machine cannot start worker processes")
    pool.submit(int, 0).result()                     # the workers are up
    victim = next(iter(pool._processes))
    os.kill(victim, signal.SIGKILL)                  # as the OOM killer would
    report = import_source(ws, str(src), "d")
    assert report.added == N + 1 and len(report.skipped) == 2
    with ws.db() as conn:
        n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM images").fetchone()
    assert (n, distinct) == (N + 1, N)
    stored = [p for p in (ws.root / "images").rglob("*") if p.is_file()]
    assert len(stored) == N + 1                       # no stray or missing files
    # the broken pool was dropped; the next import gets a fresh one
    again = import_source(ws, str(src), "again")
    assert again.added == N + 1
    assert prepare._pool is not None and prepare._pool is not pool


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_wrong_worker_count_is_a_clear_error(tmp_path, monkeypatch, value):
    from core.errors import ImageLabError
    src = tmp_path / "src"
    _folder(src)
    monkeypatch.setenv("IMAGELAB_IMPORT_WORKERS", value)
    ws = open_workspace(tmp_path / "ws")
    with pytest.raises(ImageLabError, match="IMAGELAB_IMPORT_WORKERS"):
        import_source(ws, str(src), "d")
    assert not any((ws.root / "images").glob("*/*"))       # nothing left behind
