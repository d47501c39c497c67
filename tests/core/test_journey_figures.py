"""What the photo journey's pages show, computed in core (issue #16, item 6): the split
Evaluate opens on, the top-k worth showing, which checkpoint a figure belongs to, label
versions as people read them, and whether a dataset looks like photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.data.catalog import PHOTO_MIN_SIDE, dataset_info, photo_check
from core.data.image_rows import image_rows
from core.data.sources import import_source
from core.evaluation.evaluate import evaluate_run, opening_split, split_counts
from core.labels.history import list_actions, undo_last_action
from core.labels.relabel import relabel
from core.labels.selection import get_image
from core.labels.versions import label_version_info, version_numbers
from core.store.run_paths import best_val_text, checkpoint_text
from core.training.config import TrainConfig
from core.training.runs import create_run, get_run


def write_photos(root, *, side: int = 112, mode: str = "RGB", splits=("train", "val"),
                 per_split: int = 4):
    """A folder ``<split>/<class>/n.jpg`` of colour images, ``side`` px tall."""
    rng = np.random.default_rng(0)
    for split in splits:
        for k, cls in enumerate(("ants", "bees")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_split):
                arr = rng.integers(0, 120, (side, side + 24, 3), dtype=np.uint8)
                arr[..., 2 * k] += 120
                Image.fromarray(arr).convert(mode).save(folder / f"{i}.jpg", quality=90)
    return root


def test_photo_check_reads_colour_and_size_from_the_image_table(sample_workspace, tmp_path):
    ws = sample_workspace
    digits, shapes = photo_check(ws, "digits"), photo_check(ws, "shapes")
    assert not digits.looks_like_photos and digits.colour_share == 0 and digits.median_side == 8
    assert not shapes.looks_like_photos and shapes.colour_share == 1 and shapes.median_side == 32
    import_source(ws, str(write_photos(tmp_path / "photos")), "pets")
    pets = photo_check(ws, "pets")
    assert pets.looks_like_photos and pets.colour_share == 1 and pets.median_side == 136
    assert pets.num_images == 16
    # grey photos of the same size, or colour images under the threshold, are not photos
    import_source(ws, str(write_photos(tmp_path / "grey", mode="L")), "grey")
    import_source(ws, str(write_photos(tmp_path / "small", side=PHOTO_MIN_SIDE - 40)), "small")
    assert not photo_check(ws, "grey").looks_like_photos
    small = photo_check(ws, "small")
    assert small.median_side == PHOTO_MIN_SIDE - 16 and not small.looks_like_photos


def test_evaluate_opens_on_a_split_that_has_images(sample_workspace, tmp_path):
    ws = sample_workspace
    import_source(ws, str(write_photos(tmp_path / "photos")), "pets")     # train/ and val/ only
    counts = split_counts(ws, "pets")
    assert counts == {"test": 0, "val": 8, "train": 8, "all": 16}
    assert opening_split(counts) == "val"
    assert opening_split(split_counts(ws, "digits")) == "test"
    assert opening_split({"test": 0, "val": 0, "train": 5, "all": 5}) == "train"


def test_every_accuracy_names_its_checkpoint_and_best_pt_is_the_default(trained_workspace):
    ws, run_id = trained_workspace
    run = get_run(ws, run_id)
    best, epoch = run.metrics["best_val_accuracy"], run.metrics["best_epoch"]
    assert 1 <= epoch <= run.config["epochs"]
    # Evaluate's figure on the val split is the Train page's and the runs table's
    report = evaluate_run(ws, run_id, "digits", "val")
    assert report["checkpoint"] == "best.pt" and report["checkpoint_epoch"] == epoch
    assert report["accuracy"] == pytest.approx(best, abs=1e-6)
    row = run.summary()
    assert (row["best_val_accuracy"], row["best_epoch"]) == (best, epoch)
    assert row["last_val_accuracy"] == run.metrics["val_accuracy"]        # last.pt, named apart
    assert best_val_text(run.metrics) == f"val {best:.1%} · best.pt (epoch {epoch})"
    assert checkpoint_text("best.pt", epoch).startswith(f"best.pt (epoch {epoch}: the weights of "
                                                        "the epoch with the best validation")
    assert checkpoint_text("last").startswith("last.pt (the weights after the final epoch")
    assert best_val_text({}) == "no val accuracy yet"


def test_label_versions_are_numbered_per_dataset_with_edits_since_the_last_run(sample_workspace):
    ws = sample_workspace
    first = label_version_info(ws, "shapes")        # imported after digits: a large internal id
    assert first.version > 1797 and first.number == 1
    assert first.text == "v1 · no run yet"
    ids = [r.id for r in image_rows(ws, "shapes", limit=3)]
    relabel_one(ws, "shapes", ids[0])
    assert label_version_info(ws, "shapes").text == "v2 · no run yet"
    create_run(ws, TrainConfig(dataset="shapes", image_size=16, epochs=1))   # pins v2
    assert label_version_info(ws, "shapes").text == "v2 · no edits since the last run"
    for i in ids[1:]:
        relabel_one(ws, "shapes", i)
    undo_last_action(ws, "shapes")                  # an undo is an edit too: v5
    now = label_version_info(ws, "shapes")
    assert (now.number, now.edits_since_run) == (5, 3)
    assert now.text == "v5 · 3 edits since the last run"
    # every past version has its number; another dataset's edits do not count
    relabel_one(ws, "digits", image_rows(ws, "digits", limit=1)[0].id)
    versions = [a.label_version for a in list_actions(ws, "shapes")]
    assert list(version_numbers(ws, "shapes", versions).values()) == [5, 4, 3, 2, 1]
    assert label_version_info(ws, "shapes").text == "v5 · 3 edits since the last run"
    assert label_version_info(ws, "digits").text == "v2 · no run yet"
    assert label_version_info(ws, "shapes", versions[-2]).number == 2


def relabel_one(ws, dataset: str, image_id: int) -> None:
    """Give one image another class than the one it has: one edit."""
    label = get_image(ws, dataset, image_id).label
    new = next(c for c in dataset_info(ws, dataset).classes if c != label)
    relabel(ws, dataset, [(image_id, label, new)])
