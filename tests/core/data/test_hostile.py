"""The bad-input corpus: every case ends in a clear report line or message, no crash,
nothing written outside the workspace, and the good images still get in."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from core.data.ingest import DatasetWriter
from core.data.sources import import_source
from core.data.sources.archive import ArchiveLimits, import_archive
from core.errors import ImageLabError
from tests.core.data.corpus import (
    broken_files,
    png_bytes,
    tar_with,
    tree_files,
    unusual_modes,
    write_imagefolder,
    zip_with,
)


def test_corrupt_images_are_skipped_with_reasons_and_good_ones_imported(workspace, tmp_path):
    src = tmp_path / "mostly-bad" / "cat"
    src.mkdir(parents=True)
    broken = broken_files()
    for name, (data, _) in broken.items():
        (src / name).write_bytes(data)
    (src / "good.png").write_bytes(png_bytes(1))
    report = import_source(workspace, str(src.parent), "mb")
    assert report.added == 1 and report.num_images == 1
    reasons = {s.path.split("/")[-1]: s.reason for s in report.skipped}
    assert set(reasons) == set(broken)
    for name, (_, word) in broken.items():
        assert word in reasons[name].lower(), (name, reasons[name])


def test_unusual_modes_are_normalised(workspace, tmp_path):
    src = tmp_path / "modes"
    src.mkdir()
    for name, data in unusual_modes().items():
        (src / name).write_bytes(data)
    report = import_source(workspace, str(src), "modes")
    assert report.added == 4 and report.skipped == []
    with workspace.db() as conn:
        rows = {r["original_name"]: r for r in conn.execute("SELECT * FROM images")}
    assert rows["cmyk.jpg"]["mode"] == "RGB"
    assert rows["sixteen-bit.png"]["mode"] == "L"
    assert rows["palette-transparent.png"]["mode"] == "RGB"
    assert rows["animated.gif"]["format"] == "GIF"
    # transparency went onto white: the transparent border is bright
    assert rows["palette-transparent.png"]["brightness"] > 100


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(workspace, tmp_path, fmt):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=exif)
    src = tmp_path / "exif"
    src.mkdir()
    (src / f"r.{fmt.lower()}").write_bytes(buf.getvalue())
    (src / f"plain.{fmt.lower()}").write_bytes(_encoded(img, fmt))
    import_source(workspace, str(src), "exif")
    with workspace.db() as conn:
        sizes = dict((n, (w, h)) for n, w, h in conn.execute(
            "SELECT original_name, width, height FROM images"))
    assert sizes == {f"r.{fmt.lower()}": (20, 40), f"plain.{fmt.lower()}": (40, 20)}


def _encoded(img, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _hostile_zip(path):
    good = [(f"cat/{i}.png", png_bytes(i)) for i in range(3)]
    entries = good + [("../escape.png", png_bytes(50)), ("/abs/evil.png", png_bytes(51)),
                      ("C:/win/evil.png", png_bytes(52)), ("cat/0.png", png_bytes(53)),
                      ("bomb.bin", b"\0" * (20 * 1024 * 1024))]
    return zip_with(path, entries, symlinks={"cat/link.png": "/etc/passwd"})


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_hostile_zip(workspace, tmp_path):
    z = _hostile_zip(tmp_path / "hostile.zip")
    before = tree_files(tmp_path)
    report = import_source(workspace, str(z), "hz")
    assert report.added == 3
    reasons = {s.path: s.reason for s in report.skipped}
    assert "unsafe path" in reasons["hostile.zip:../escape.png"]
    assert "unsafe path" in reasons["hostile.zip:/abs/evil.png"]
    assert "unsafe path" in reasons["hostile.zip:C:/win/evil.png"]
    assert "symbolic link" in reasons["hostile.zip:cat/link.png"]
    assert "duplicate name" in reasons["hostile.zip:cat/0.png"]
    assert "zip bomb" in reasons["hostile.zip:bomb.bin"]
    after = tree_files(tmp_path)
    outside = {p for p in after - before if not p.startswith("ws/")}
    assert outside == set()
    assert not any("escape" in p or "evil" in p for p in after)
    assert list(workspace.tmp_dir.iterdir()) == []


def test_hostile_tar(workspace, tmp_path):
    good = [(f"dog/{i}.png", png_bytes(i)) for i in range(2)]
    t = tar_with(tmp_path / "hostile.tgz", good + [("../../up.png", png_bytes(9)),
                                                   ("/etc/abs.png", png_bytes(8))],
                 symlink=("dog/sym.png", "/etc/passwd"), hardlink=("dog/hard.png", "/etc/passwd"),
                 device="dog/null")
    before = tree_files(tmp_path)
    report = import_source(workspace, str(t), "ht")
    assert report.added == 2
    reasons = " | ".join(f"{s.path}: {s.reason}" for s in report.skipped)
    for needle in ("../../up.png: unsafe path", "/etc/abs.png: unsafe path",
                   "dog/sym.png: symbolic link", "dog/hard.png: hard link",
                   "dog/null: device or special file"):
        assert needle in reasons, reasons
    outside = {p for p in tree_files(tmp_path) - before if not p.startswith("ws/")}
    assert outside == set()


def test_tar_bomb_by_ratio_stops_and_keeps_good_images(workspace, tmp_path):
    t = tar_with(tmp_path / "bomb.tar.gz", [("cat/0.png", png_bytes(0)),
                                            ("cat/zeros.png", b"\0" * (30 * 1024 * 1024)),
                                            ("cat/after.png", png_bytes(1))])
    report = import_source(workspace, str(t), "tb")
    assert report.added == 1
    assert any("decompression bomb" in s.reason for s in report.skipped)
    assert any(s.path.endswith("(rest)") for s in report.skipped)


def test_zip_bomb_by_count_is_refused(workspace, tmp_path):
    z = zip_with(tmp_path / "many.zip", [(f"x/{i}.png", b"") for i in range(120)])
    with pytest.raises(ImageLabError, match="more than the limit of 100"), \
            DatasetWriter(workspace, "many", "many.zip") as writer:
        import_archive(workspace, writer, z, limits=ArchiveLimits(max_members=100))
    assert list(workspace.tmp_dir.iterdir()) == []
    assert not (workspace.images_dir).exists() or list(workspace.images_dir.iterdir()) == []


def test_not_an_archive_and_missing_sources_give_clear_errors(workspace, tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ImageLabError, match="not a readable archive"):
        import_source(workspace, str(fake), "fake")
    with pytest.raises(ImageLabError, match="not found"):
        import_source(workspace, str(tmp_path / "nowhere"), "x")
    with pytest.raises(ImageLabError, match="unsupported URL scheme"):
        import_source(workspace, "ftp://example.com/x.zip", "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageLabError, match="holds no files"):
        import_source(workspace, str(empty), "x")
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0


def test_damaged_zip_member_is_reported(workspace, tmp_path):
    z = tmp_path / "damaged.zip"
    write_imagefolder(tmp_path / "src", per_class=2)
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((tmp_path / "src").rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    raw = bytearray(z.read_bytes())
    # flip bytes inside the first member's compressed data: its CRC check fails
    raw[60:70] = b"\xff" * 10
    z.write_bytes(bytes(raw))
    report = import_source(workspace, str(z), "dz")
    assert report.added == 3
    assert len(report.skipped) == 1
