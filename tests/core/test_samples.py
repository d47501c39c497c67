"""Built-in samples are real datasets of real image files, split with a seed."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from core.data.catalog import dataset_info, list_datasets
from core.data.samples import SHAPE_CLASSES, ensure_samples, import_sample, shapes_images
from core.data.splits import assign_splits
from core.errors import ImageLabError, NotFoundError

DIGITS = [str(i) for i in range(10)]


def test_samples_are_listed_with_counts_and_classes(sample_workspace):
    by_name = {d.name: d for d in list_datasets(sample_workspace)}
    assert by_name["digits"].num_images == 1797
    assert by_name["mnist-5k"].num_images == 5000
    assert by_name["shapes"].num_images == 600
    assert by_name["digits"].classes == DIGITS
    assert by_name["mnist-5k"].classes == DIGITS
    assert by_name["shapes"].classes == SHAPE_CLASSES


def test_sample_files_are_real_decodable_images(sample_workspace):
    with sample_workspace.db() as conn:
        rows = conn.execute(
            "SELECT i.path, i.sha256, i.width, i.height, i.mode, d.name FROM images i "
            "JOIN datasets d ON d.id = i.dataset_id WHERE i.id % 97 = 0").fetchall()
    assert len(rows) > 50
    seen_modes = {}
    for r in rows:
        path = sample_workspace.resolve(r["path"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        with Image.open(path) as img:
            img.load()
            assert img.size == (r["width"], r["height"])
            assert img.format == "PNG"
            seen_modes[r["name"]] = img.mode
    assert seen_modes["digits"] == "L" and seen_modes["shapes"] == "RGB"


def test_digit_pixels_match_the_packaged_data(sample_workspace):
    from sklearn.datasets import load_digits
    digits = load_digits()
    with sample_workspace.db() as conn:
        r = conn.execute(
            "SELECT i.path, c.name FROM images i JOIN classes c ON c.id = i.class_id "
            "JOIN datasets d ON d.id = i.dataset_id WHERE d.name='digits' AND "
            "i.original_name = 'digits/000005.png'").fetchone()
    pixels = np.asarray(Image.open(sample_workspace.resolve(r["path"])))
    expected = np.rint(digits.images[5] * 255 / 16).astype(np.uint8)
    assert np.array_equal(pixels, expected)
    assert r["name"] == str(digits.target[5])


def test_split_is_stratified_and_covers_every_class(sample_workspace):
    info = dataset_info(sample_workspace, "digits")
    assert sum(info.splits.values()) == 1797
    for row in info.per_class:
        assert row["train"] + row["val"] + row["test"] == row["total"]
        assert abs(row["val"] / row["total"] - 0.15) < 0.02
        assert abs(row["test"] / row["total"] - 0.15) < 0.02


def test_split_is_seeded():
    labels = [str(i % 4) for i in range(400)]
    a = assign_splits(labels, [None] * 400, {"train": .7, "val": .15, "test": .15}, seed=1)
    b = assign_splits(labels, [None] * 400, {"train": .7, "val": .15, "test": .15}, seed=1)
    c = assign_splits(labels, [None] * 400, {"train": .7, "val": .15, "test": .15}, seed=2)
    assert a == b and a != c


def test_given_splits_are_kept_and_tiny_classes_still_reach_val_and_test():
    labels = ["a"] * 3 + ["b"] * 5
    given = [None, None, None, "test", "test", "test", "test", "test"]
    out = assign_splits(labels, given, {"train": .7, "val": .15, "test": .15}, seed=0)
    assert out[3:] == ["test"] * 5
    assert sorted(out[:3]) == ["test", "train", "val"]


def test_shapes_are_seeded_prefix_stable_and_sized():
    first = list(shapes_images(count=12, size=24, seed=3))
    again = list(shapes_images(count=18, size=24, seed=3))[:12]
    other = list(shapes_images(count=12, size=24, seed=4))
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again))
    assert not np.array_equal(first[0][0], other[0][0])
    assert first[0][0].shape == (24, 24, 3) and first[0][0].dtype == np.uint8
    assert [lbl for _, lbl in first[:6]] == SHAPE_CLASSES


def test_shapes_are_distinguishable_from_their_background():
    # The shape's colour must differ from the texture it sits on, or the task is noise.
    for img, _ in shapes_images(count=30, size=32, seed=0):
        centre_spread = img.reshape(-1, 3).std(axis=0).sum()
        assert centre_spread > 10


def test_import_with_custom_name_count_and_size(workspace):
    report = import_sample(workspace, "sample:shapes", "tiny", count=60, size=40)
    assert report.num_images == 60 and report.name == "tiny"
    info = dataset_info(workspace, "tiny")
    assert {r["total"] for r in info.per_class} == {10}
    with workspace.db() as conn:
        assert conn.execute("SELECT DISTINCT width FROM images").fetchall()[0][0] == 40


def test_ensure_samples_is_idempotent(workspace):
    first = ensure_samples(workspace)
    assert sorted(r.name for r in first) == ["digits", "mnist-5k", "shapes"]
    assert ensure_samples(workspace) == []
    assert len(list_datasets(workspace)) == 3


def test_bad_sample_requests_are_clear(workspace):
    with pytest.raises(NotFoundError, match="unknown sample.*sample:digits"):
        import_sample(workspace, "sample:cifar")
    with pytest.raises(ImageLabError, match="only to sample:shapes"):
        import_sample(workspace, "sample:digits", count=10)
    import_sample(workspace, "sample:shapes", "dup", count=12)
    with pytest.raises(ImageLabError, match="already exists"):
        import_sample(workspace, "sample:shapes", "dup", count=12)
    with pytest.raises(ImageLabError, match="invalid dataset name"):
        import_sample(workspace, "sample:shapes", "../evil", count=12)
    assert not list((workspace.root.parent).glob("evil*"))


def test_import_records_initial_label_events(sample_workspace):
    info = dataset_info(sample_workspace, "shapes")
    with sample_workspace.db() as conn:
        n_events = conn.execute(
            "SELECT COUNT(*) FROM label_events e JOIN actions a ON a.id = e.action_id "
            "WHERE a.dataset_id = ? AND a.kind = 'import'", (info.id,)).fetchone()[0]
    assert n_events == 600
    assert info.label_version > 0
