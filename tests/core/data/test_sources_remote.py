"""URL (against a real http.server on loopback), SQL (a real SQLite file) and
torchvision (real MNIST idx files written by the test) sources."""

from __future__ import annotations

import sqlite3
import struct
import time

import numpy as np
import pytest

from core.data.catalog import dataset_info
from core.data.net import ALLOW_ENV, check_address
from core.data.sources import ImportOptions, import_source
from core.errors import ImageLabError
from tests.core.data.corpus import png_bytes


def test_loopback_is_refused_by_default(workspace, http_server, monkeypatch):
    base, _ = http_server
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(ImageLabError, match="private or loopback"):
        import_source(workspace, f"{base}/pets.zip", "p")
    for ip in ("10.1.2.3", "192.168.0.1", "172.16.0.1", "::1", "169.254.169.254", "0.0.0.0"):
        with pytest.raises(ImageLabError, match="refused"):
            check_address(ip, allow_private=False)
    with pytest.raises(ImageLabError, match="link-local"):
        check_address("169.254.169.254", allow_private=True)
    check_address("93.184.216.34", allow_private=False)  # a public address passes


def test_url_archive_with_checksum_and_redirect(workspace, http_server, monkeypatch):
    base, digest = http_server
    monkeypatch.setenv(ALLOW_ENV, "1")
    report = import_source(workspace, f"{base}/moved", "p", ImportOptions(sha256=digest))
    assert report.added == 6 and report.classes == ["cat", "dog"]
    with pytest.raises(ImageLabError, match="checksum mismatch"):
        import_source(workspace, f"{base}/pets.zip", "q", ImportOptions(sha256="0" * 64))
    assert list(workspace.tmp_dir.iterdir()) == []


def test_url_failures_are_clear(workspace, http_server, monkeypatch):
    base, _ = http_server
    monkeypatch.setenv(ALLOW_ENV, "1")
    cases = [(f"{base}/nothing.zip", "HTTP 404"), (f"{base}/page.html", "HTML page"),
             (f"{base}/to-metadata", "link-local")]
    for url, message in cases:
        with pytest.raises(ImageLabError, match=message):
            import_source(workspace, url, "x")
    t0 = time.monotonic()
    with pytest.raises(ImageLabError, match="did not finish|timed out"):
        import_source(workspace, f"{base}/forever.zip", "x", ImportOptions(timeout=1.5))
    assert time.monotonic() - t0 < 10
    with pytest.raises(ImageLabError, match="larger than the limit"):
        import_source(workspace, f"{base}/forever.zip", "x",
                      ImportOptions(timeout=20, max_bytes=5000))
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0
    assert list(workspace.tmp_dir.iterdir()) == []


def test_url_manifest_fetches_each_image(workspace, http_server, monkeypatch):
    base, _ = http_server
    monkeypatch.setenv(ALLOW_ENV, "1")
    report = import_source(workspace, f"{base}/list.csv", "m")
    assert report.added == 2 and report.classes == ["cat", "dog"]
    assert len(report.skipped) == 1 and "404" in report.skipped[0].reason


def _make_db(path, base):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE pics (id INTEGER PRIMARY KEY, img BLOB, file TEXT, tag TEXT, split TEXT)")
    (base / "files").mkdir()
    (base / "files" / "f.png").write_bytes(png_bytes(30))
    rows = [(png_bytes(i), None, "cat" if i % 2 else "dog", None) for i in range(6)]
    rows += [(b"not an image", None, "cat", None), (None, "files/f.png", "dog", "test"),
             (None, "files/none.png", "dog", None)]
    conn.executemany("INSERT INTO pics(img, file, tag, split) VALUES (?,?,?,?)", rows)
    conn.commit()
    conn.close()


def test_sql_source_bytes_and_paths_read_only(workspace, tmp_path):
    db = tmp_path / "pics.db"
    _make_db(db, tmp_path)
    mtime = db.stat().st_mtime_ns
    q = "SELECT img AS image, file AS path, tag AS label, split FROM pics ORDER BY id"
    report = import_source(workspace, f"sqlite:///{db}", "sq", ImportOptions(query=q))
    assert report.added == 7 and report.classes == ["cat", "dog"]
    reasons = [s.reason for s in report.skipped]
    assert any("not an image" in r for r in reasons) and "file not found" in reasons
    assert dataset_info(workspace, "sq").splits["test"] >= 1
    assert db.stat().st_mtime_ns == mtime
    with pytest.raises(ImageLabError, match="must be a SELECT"):
        import_source(workspace, f"sqlite:///{db}", "x", ImportOptions(query="DELETE FROM pics"))
    with pytest.raises(ImageLabError, match="query failed"):
        import_source(workspace, f"sqlite:///{db}", "x",
                      ImportOptions(query="SELECT img AS image FROM nope"))
    with pytest.raises(ImageLabError, match="not found"):
        import_source(workspace, f"sqlite:///{tmp_path / 'missing.db'}", "x",
                      ImportOptions(query="SELECT 1 AS image"))
    assert not (tmp_path / "missing.db").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pics").fetchone()[0] == 9


def _write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def test_torchvision_offline_message_names_files_and_folder(workspace, tmp_path):
    root = tmp_path / "tv"
    with pytest.raises(ImageLabError) as exc:
        import_source(workspace, "torchvision:MNIST", "mnist",
                      ImportOptions(root=str(root), download=False))
    msg = str(exc.value)
    assert "train-images-idx3-ubyte" in msg and str(root / "MNIST" / "raw") in msg
    with pytest.raises(ImageLabError, match="cifar-10-batches-py"):
        import_source(workspace, "torchvision:CIFAR10", "c",
                      ImportOptions(root=str(root), download=False))
    with pytest.raises(ImageLabError, match="unknown torchvision dataset"):
        import_source(workspace, "torchvision:ImageNet22k", "c")


def test_torchvision_reads_files_already_on_disk(workspace, tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    _write_idx(raw, "train", rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10)
    _write_idx(raw, "t10k", rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)
    report = import_source(workspace, "torchvision:FashionMNIST", "fm",
                           ImportOptions(root=str(tmp_path / "tv"), download=False))
    assert report.added == 40 and len(report.classes) == 10 and report.classes[0] == "T-shirt/top"
    info = dataset_info(workspace, "fm")
    assert info.splits["test"] == 10 and info.splits["val"] > 0
    with workspace.db() as conn:
        w, h, mode = conn.execute("SELECT width, height, mode FROM images LIMIT 1").fetchone()
    assert (w, h, mode) == (28, 28, "L")


def test_url_credentials_are_not_stored_with_the_dataset(workspace, http_server, monkeypatch):
    base, _ = http_server
    monkeypatch.setenv(ALLOW_ENV, "1")
    host = base.split("//", 1)[1]
    for url in (f"http://tok3nvalue@{host}/pets.zip", f"http://ada:s3cret@{host}/pets.zip"):
        name = "tok" if "tok3n" in url else "pw"
        import_source(workspace, url, name)
        with workspace.db() as conn:
            source = conn.execute("SELECT source FROM datasets WHERE name = ?", (name,)).fetchone()[0]
        assert "tok3nvalue" not in source and "s3cret" not in source and "***@" in source
