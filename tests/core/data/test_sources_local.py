"""Folder, archive, manifest and upload sources, from the Python API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.data.catalog import dataset_info
from core.data.quality import quality_report
from core.data.sources import ImportOptions, import_source, import_uploads
from core.data.tensor_cache import load_cache
from core.data.thumbnails import thumbnail_file
from core.errors import ImageLabError
from tests.conftest import REPO, python_env
from tests.core.data.corpus import png_bytes, tar_with, write_imagefolder, zip_with


def test_imagefolder_with_splits_keeps_them(workspace, tmp_path):
    src = tmp_path / "pets"
    n = write_imagefolder(src, classes=("cat", "dog"), per_class=3, splits=["train", "val", "test"])
    report = import_source(workspace, str(src), "pets")
    assert report.added == n == 18 and report.num_images == 18 and report.skipped == []
    info = dataset_info(workspace, "pets")
    assert info.classes == ["cat", "dog"]
    assert info.splits == {"train": 6, "val": 6, "test": 6}
    assert all(r["train"] == r["val"] == r["test"] == 3 for r in info.per_class)


def test_class_folders_get_a_seeded_stratified_split(workspace, tmp_path):
    src = tmp_path / "flowers"
    write_imagefolder(src, classes=("rose", "tulip", "daisy"), per_class=20)
    a = import_source(workspace, str(src), "a", ImportOptions(seed=3))
    b = import_source(workspace, str(src), "b", ImportOptions(seed=3))
    ia, ib = dataset_info(workspace, "a"), dataset_info(workspace, "b")
    assert a.added == 60 and ia.per_class == ib.per_class
    for row in ia.per_class:
        assert row["total"] == 20 and row["val"] == 3 and row["test"] == 3 and row["train"] == 14
    with workspace.db() as conn:
        sa = [r[0] for r in conn.execute("SELECT split FROM images WHERE dataset_id=? ORDER BY id",
                                         (a.dataset_id,))]
        sb = [r[0] for r in conn.execute("SELECT split FROM images WHERE dataset_id=? ORDER BY id",
                                         (b.dataset_id,))]
    assert sa == sb


def test_flat_folder_is_unlabelled(workspace, tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.png").write_bytes(png_bytes(i))
    report = import_source(workspace, str(src), "flat")
    info = dataset_info(workspace, "flat")
    assert report.added == 5 and info.classes == [] and sum(info.unlabelled.values()) == 5


def test_every_image_gets_stats_thumbnail_and_cache(workspace, tmp_path):
    src = tmp_path / "pets"
    write_imagefolder(src, per_class=4)
    report = import_source(workspace, str(src), "pets")
    with workspace.db() as conn:
        rows = conn.execute("SELECT id, sha256, path, phash, brightness, sharpness, mean_r FROM images "
                            "ORDER BY id").fetchall()
    assert all(r["phash"] is not None and 0 <= r["brightness"] <= 255 and r["sharpness"] > 0
               for r in rows)
    # 24×20 PNGs are their own thumbnails: the gallery shows the stored original
    shown = [thumbnail_file(workspace.root, workspace.thumbs_dir, r["sha256"], r["path"])
             for r in rows]
    assert all(p.exists() and max(Image.open(p).size) <= 96 for p in shown)
    assert shown[0] == workspace.root / rows[0]["path"]
    assert report.cache_size == 24  # the native size (24×20 images)
    cache = load_cache(workspace, "pets", 24)
    assert cache.pixels.shape == (8, 3, 24, 24) and isinstance(cache.pixels, np.memmap)
    assert list(cache.image_ids) == [r["id"] for r in rows]
    assert cache.pixels.std() > 10  # real pixels, not zeros


def test_append_adds_to_an_existing_dataset(workspace, tmp_path):
    src = tmp_path / "pets"
    write_imagefolder(src, per_class=3)
    import_source(workspace, str(src), "pets")
    more = tmp_path / "more"
    write_imagefolder(more, classes=("dog", "bird"), per_class=2, seed=7)
    report = import_source(workspace, str(more), "pets", ImportOptions(append=True))
    assert report.added == 4 and report.num_images == 10
    assert dataset_info(workspace, "pets").classes == ["cat", "dog", "bird"]
    with pytest.raises(ImageLabError, match="already exists"):
        import_source(workspace, str(more), "pets")
    with pytest.raises(ImageLabError, match="unknown dataset"):
        import_source(workspace, str(more), "nope", ImportOptions(append=True))


def test_duplicates_conflicts_and_leakage_are_reported(workspace, tmp_path):
    src = tmp_path / "d"
    for split, cls, seed in (("train", "cat", 1), ("train", "cat", 2), ("test", "dog", 1),
                             ("train", "dog", 3), ("train", "dog", 3)):
        folder = src / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{seed}-{len(list(folder.iterdir()))}.png").write_bytes(png_bytes(seed))
    report = import_source(workspace, str(src), "d")
    assert report.added == 5
    dup_sizes = sorted(len(d["image_ids"]) for d in report.duplicates)
    assert dup_sizes == [2, 2]
    assert [c["labels"] for c in report.label_conflicts] == [["cat", "dog"]]
    assert [lk["splits"] for lk in report.leakage] == [["test", "train"]]
    q = quality_report(workspace, "d")
    assert q.counts["duplicates"] == 2 and q.counts["leakage"] == 1


def _save(path, pixels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def test_quality_flags_dark_bright_blurry_and_near_duplicates(workspace, tmp_path):
    """Each content flag on real files: a dark, a bright and a flat (blurry) image, and
    two near-duplicates (one a brightened re-encode of the other), against sharp
    unrelated images that get no flag."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:48]
    src = tmp_path / "q" / "things"
    _save(src / "dark.png", rng.integers(0, 25, (48, 48, 3)))
    _save(src / "bright.png", rng.integers(232, 256, (48, 48, 3)))
    _save(src / "flat.png", np.full((48, 48, 3), 120))
    scene = (np.sin(xx / 5.0) * np.cos(yy / 7.0) * 100 + 128)[..., None].repeat(3, axis=2)
    _save(src / "scene.png", scene)
    _save(src / "scene-brighter.png", np.clip(scene * 1.05 + 6, 0, 255))
    for k in range(3):
        _save(src / f"noise-{k}.png", rng.integers(0, 256, (48, 48, 3)))
    import_source(workspace, str(tmp_path / "q"), "q")
    q = quality_report(workspace, "q")
    with workspace.db() as conn:
        name_of = dict(conn.execute("SELECT id, original_name FROM images").fetchall())
    names = lambda ids: sorted(name_of[i].split("/")[-1] for i in ids)
    assert names(q.dark) == ["dark.png"]
    assert names(q.bright) == ["bright.png"]
    assert "flat.png" in names(q.blurry) and not any(n.startswith("noise") for n in names(q.blurry))
    groups = [names(g["image_ids"]) for g in q.near_duplicates]
    assert ["scene-brighter.png", "scene.png"] in groups
    assert not any(n.startswith("noise") for g in groups for n in g)


def test_thumbnails_tiny_small_and_large(workspace, tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "t" / "c"
    _save(src / "tiny.png", rng.integers(0, 256, (8, 8)))
    _save(src / "small.png", rng.integers(0, 256, (40, 30, 3)))
    _save(src / "large.png", rng.integers(0, 256, (200, 300, 3)))
    import_source(workspace, str(tmp_path / "t"), "t")
    with workspace.db() as conn:
        rows = {r["original_name"].split("/")[-1]: r for r in conn.execute(
            "SELECT original_name, sha256, path FROM images")}
    shown = {k: thumbnail_file(workspace.root, workspace.thumbs_dir, r["sha256"], r["path"])
             for k, r in rows.items()}
    assert shown["small.png"] == workspace.root / rows["small.png"]["path"]  # its own
    assert Image.open(shown["tiny.png"]).size == (96, 96)        # scaled up, crisp
    assert Image.open(shown["large.png"]).size == (96, 64)       # scaled down
    assert all(p.suffix == ".jpg" for k, p in shown.items() if k != "small.png")


def test_zip_and_tar_archives_with_a_wrapping_folder(workspace, tmp_path):
    entries = [(f"pets/{s}/{c}/{i}.png", png_bytes(k))
               for k, (s, c, i) in enumerate((s, c, i) for s in ("train", "test")
                                             for c in ("cat", "dog") for i in range(2))]
    z = zip_with(tmp_path / "pets.zip", entries)
    report = import_source(workspace, str(z), None)
    assert report.name == "pets" and report.added == 8 and report.skipped == []
    assert dataset_info(workspace, "pets").splits == {"train": 4, "val": 0, "test": 4}
    for mode, ext in (("w", ".tar"), ("w:gz", ".tar.gz"), ("w:gz", ".tgz")):
        t = tar_with(tmp_path / f"t{ext}", entries, mode=mode)
        r = import_source(workspace, str(t), f"t{ext.replace('.', '-')}")
        assert r.added == 8 and r.classes == ["cat", "dog"], ext
    assert list(workspace.tmp_dir.iterdir()) == []  # extraction folders are removed


def test_manifest_csv_and_json(workspace, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(6):
        (imgs / f"{i}.png").write_bytes(png_bytes(i))
    (tmp_path / "m.csv").write_text(
        "path,label,split\nimgs/0.png,cat,train\nimgs/1.png,cat,\nimgs/2.png,dog,test\n"
        "imgs/missing.png,dog,train\nimgs/3.png,,train\nimgs/4.png,dog,holdout\n")
    report = import_source(workspace, str(tmp_path / "m.csv"), "m")
    assert report.added == 4
    reasons = {s.path: s.reason for s in report.skipped}
    assert any("missing.png" in p and r == "file not found" for p, r in reasons.items())
    assert any("holdout" in r for r in reasons.values())
    assert any("empty label" in n for n in report.notes)
    info = dataset_info(workspace, "m")
    assert info.classes == ["cat", "dog"] and sum(info.unlabelled.values()) == 1
    (tmp_path / "m.json").write_text(json.dumps(
        {"images": [{"file": str(imgs / "5.png"), "class": "bird", "split": "val"}]}))
    r2 = import_source(workspace, str(tmp_path / "m.json"), "m", ImportOptions(append=True))
    assert r2.added == 1 and r2.num_images == 5
    (tmp_path / "bad.csv").write_text("name,what\nx,y\n")
    with pytest.raises(ImageLabError, match="needs a 'path' or 'url' column"):
        import_source(workspace, str(tmp_path / "bad.csv"), "bad")


def test_uploads_and_webcam_shots_go_into_the_chosen_class(workspace, tmp_path):
    files = [(f"shot-{i}.png", png_bytes(i)) for i in range(3)] + [("notes.txt", b"hello")]
    report = import_uploads(workspace, "cam", files, label="me")
    assert report.added == 3 and [s.path for s in report.skipped] == ["notes.txt"]
    z = zip_with(tmp_path / "up.zip", [("a/1.png", png_bytes(10)), ("b/2.png", png_bytes(11))])
    r2 = import_uploads(workspace, "cam", [("up.zip", z.read_bytes()),
                                           ("x.png", png_bytes(12))], label="other", append=True)
    assert r2.added == 3 and r2.num_images == 6
    info = dataset_info(workspace, "cam")
    assert {r["class"]: r["total"] for r in info.per_class} == {"me": 3, "other": 3}


def test_cli_import_json_and_info_json(tmp_path):
    home = tmp_path / "ws"
    src = tmp_path / "pets"
    write_imagefolder(src, per_class=3)
    (src / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = subprocess.run([sys.executable, "-m", "core", "datasets", "import", str(src),
                          "--name", "pets", "--json"], cwd=REPO, env=python_env(home),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["name"] == "pets" and data["num_images"] == 6
    assert data["skipped"] == [{"path": "cat/broken.png", "reason": data["skipped"][0]["reason"]}]
    out = subprocess.run([sys.executable, "-m", "core", "datasets", "info", "pets", "--json"],
                         cwd=REPO, env=python_env(home), capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    assert {r["class"]: r["total"] for r in info["per_class"]} == {"cat": 3, "dog": 3}
    assert info["quality"]["counts"]["skipped"] == 1 and len(info["quality"]["channel_mean"]) == 3
    out = subprocess.run([sys.executable, "-m", "core", "datasets", "import", str(tmp_path / "nope"),
                          "--name", "x", "--json"], cwd=REPO, env=python_env(home),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not found" in json.loads(out.stdout)["error"]
    assert "Traceback" not in out.stderr
