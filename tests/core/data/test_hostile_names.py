"""Odd names in archives and folders: each ends as a reason in the import report (never a
traceback, never a silent drop), and class names follow one rule, typed or from the data."""

from __future__ import annotations

import sqlite3
import unicodedata

import pytest

from core.data.sources import import_source
from core.errors import ImageLabError
from core.labels.classes import add_class, rename_class
from tests.core.data.corpus import png_bytes, tar_with, tree_files, zip_with


def _reasons(report) -> dict[str, str]:
    return {s.path: s.reason for s in report.skipped}


def _classes(ws, dataset: str) -> list[str]:
    with sqlite3.connect(ws.db_path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT c.name FROM classes c JOIN datasets d ON d.id = c.dataset_id "
            "WHERE d.name = ? AND c.deleted_at IS NULL ORDER BY c.name", (dataset,))]


def test_overlong_member_names_and_paths_are_reported(workspace, tmp_path):
    long_name = "n" * 300 + ".png"
    deep = "/".join(["d" * 200] * 22) + "/x.png"          # 4,400 bytes, each part ≤ 255
    z = zip_with(tmp_path / "long.zip", [("cat/ok.png", png_bytes(1)),
                                         (f"cat/{long_name}", png_bytes(2)),
                                         (f"cat/{deep}", png_bytes(3))])
    before = tree_files(tmp_path)
    report = import_source(workspace, str(z), "longnames")
    assert report.added == 1
    reasons = _reasons(report)
    assert "longer than 255 bytes" in reasons[f"long.zip:cat/{long_name}"]
    assert "longer than 4096 bytes" in reasons[f"long.zip:cat/{deep}"]
    assert {p for p in tree_files(tmp_path) - before if not p.startswith("ws/")} == set()


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_a_file_and_a_folder_of_the_same_name_are_reported(workspace, tmp_path, kind):
    entries = [("cat/a", png_bytes(1)), ("cat/a/b.png", png_bytes(2)), ("cat/c.png", png_bytes(3)),
               ("dog/d/e.png", png_bytes(4)), ("dog/d", png_bytes(5))]
    path = tmp_path / f"clash.{kind}"
    (zip_with if kind == "zip" else tar_with)(path, entries)
    report = import_source(workspace, str(path), f"clash-{kind}")
    reasons = _reasons(report)
    assert "share a name" in reasons[f"{path.name}:cat/a/b.png"], reasons
    assert "folder of the archive has this file's name" in reasons[f"{path.name}:dog/d"], reasons
    assert report.added == 3            # cat/a (a PNG without a suffix), cat/c.png, dog/d/e.png
    assert list(workspace.tmp_dir.iterdir()) == []


def test_png_with_a_zip_appended_is_read_as_the_image_and_reported(workspace, tmp_path):
    inner = zip_with(tmp_path / "inner.zip", [("cat/x.png", png_bytes(7)),
                                              ("dog/y.png", png_bytes(8))])
    poly = tmp_path / "photo.png"
    poly.write_bytes(png_bytes(9) + inner.read_bytes())
    report = import_source(workspace, str(poly), "poly")
    assert report.added == 1
    assert any("photo.png: an image with a zip archive appended" in n for n in report.notes)
    assert _classes(workspace, "poly") == []       # the archive's cat/dog were not extracted


def test_top_level_macos_metadata_beside_a_wrapping_folder_is_reported(workspace, tmp_path):
    z = zip_with(tmp_path / "mac.zip", [("pets/cat/1.png", png_bytes(1)),
                                        ("pets/dog/2.png", png_bytes(2)),
                                        ("__MACOSX/pets/cat/._1.png", b"\0\5\26\7meta")])
    report = import_source(workspace, str(z), "mac")
    assert report.added == 2
    assert any("mac.zip:__MACOSX/: macOS metadata folder ignored" in n for n in report.notes)


def test_class_folder_names_follow_the_typed_name_rule(workspace, tmp_path):
    root = tmp_path / "names"
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for k, folder in enumerate([nfc, nfd, "   ", "x" * 150, "line\nbreak", " dog "]):
        (root / folder).mkdir(parents=True)
        (root / folder / f"{k}.png").write_bytes(png_bytes(k))
    report = import_source(workspace, str(root), "names")
    assert _classes(workspace, "names") == ["café", "dog"]   # one café (NFC), dog stripped
    assert report.added == 3
    reasons = _reasons(report)
    assert "blank" in reasons["   /2.png"]
    assert "150 characters" in reasons[f"{'x' * 150}/3.png"]
    assert "control character" in reasons["line\nbreak/4.png"]


def test_typed_class_names_are_normalised_the_same_way(workspace, tmp_path):
    (tmp_path / "t" / "café").mkdir(parents=True)
    (tmp_path / "t" / "café" / "1.png").write_bytes(png_bytes(1))
    import_source(workspace, str(tmp_path / "t"), "typed")
    with pytest.raises(ImageLabError, match="already"):
        add_class(workspace, "typed", unicodedata.normalize("NFD", "café"))
    for bad, why in [("  ", "blank"), ("a\tb", "control character"), ("y" * 101, "101 characters")]:
        with pytest.raises(ImageLabError, match=why):
            add_class(workspace, "typed", bad)
    rename_class(workspace, "typed", "café", unicodedata.normalize("NFD", "thé"))
    assert _classes(workspace, "typed") == [unicodedata.normalize("NFC", "thé")]
