"""The photo journey has no dead end (issue #16, item 6), in AppTest on real workspaces:
a 2-class photo dataset with train/ and val/ folders only, trained for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.data.sources import import_source
from core.labels.relabel import relabel
from core.labels.selection import get_image
from core.store.run_paths import best_val_text
from core.store.workspace import open_workspace
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run, get_run, set_status
from tests.conftest import private_workspace
from tests.core.test_journey_figures import write_photos
from tests.dashboard.apptest import open_page


@pytest.fixture(scope="module")
def _photos_master(tmp_path_factory):
    """A workspace with 'pets': 2 classes of 136×112 colour photos in train and val (no
    test split), and one finished run on it."""
    root = tmp_path_factory.mktemp("photos") / "ws"
    ws = open_workspace(root)
    import_source(ws, str(write_photos(tmp_path_factory.mktemp("src"), per_split=12)), "pets")
    run = create_run(ws, TrainConfig(dataset="pets", image_size=32, epochs=3, batch_size=8))
    assert train_run(ws, run.id)["status"] == "finished"
    return root, run.id


@pytest.fixture
def photos_workspace(_photos_master, tmp_path, monkeypatch):
    master, run_id = _photos_master
    return private_workspace(master, tmp_path, monkeypatch), run_id


def test_evaluate_opens_on_the_val_split_of_a_dataset_without_test(photos_workspace):
    ws, run_id = photos_workspace
    run = get_run(ws, run_id)
    at = open_page("pages/5_Evaluate.py", 180, check=True)
    assert not at.error, [e.value for e in at.error]        # no "no labelled images in 'test'"
    split = at.selectbox(key="eval_split_pets")
    assert split.value == "val"
    assert split.options == ["test (0 images)", "val (24 images)", "train (24 images)",
                             "all (48 images)"]
    assert any(c.value == "Opened on the val split: pets has no labelled test images."
               for c in at.caption)
    # 2 classes: no top-k (top-3 of 2 classes would be 1.0, or the accuracy relabelled)
    assert [m.label for m in at.metric] == ["Accuracy", "Macro F1", "ECE", "Images"]
    # the same checkpoint and the same figure as the Train page's, named
    epoch = run.metrics["best_epoch"]
    assert at.metric[0].value == f"{run.metrics['best_val_accuracy']:.3f}"
    assert any(c.value.startswith(f"Checkpoint best.pt (epoch {epoch}: the weights of the epoch "
                                  "with the best validation accuracy), on the val split of pets")
               for c in at.caption)
    assert best_val_text(run.metrics) in at.selectbox(key="eval_run").options[0]
    # the confusion matrix is two cells that fill a chart of their size
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    plot = layout["width"] - layout["margin"]["l"] - layout["margin"]["r"]
    assert layout["width"] <= 320 and trace["marker"]["size"] >= 0.9 * plot / 2


def test_train_page_offers_imagenet_fine_tuning_for_photos_in_one_click(photos_workspace):
    at = open_page("pages/3_Train.py", 120, check=True)
    assert at.selectbox(key="train_dataset").value == "pets"
    hint = [i.value for i in at.info if "looks like photos" in i.value]
    assert hint and "median side 136 px" in hint[0] and "ImageNet weights" in hint[0]
    at.button(key="train_photo_ft").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Fine-tune"
    assert at.query_params["source"] == "efficientnet_lite0:imagenet"   # the link names it
    # the picker took the request once: the offline ImageNet source is chosen
    assert at.radio(key="ft_source_kind").value == "ImageNet weights"
    assert at.selectbox(key="ft_source_imagenet").value == "efficientnet_lite0:imagenet"
    assert "ft_source_request" not in at.session_state
    assert at.selectbox(key="ft_dataset").value == "pets"


def test_no_photo_hint_for_small_grey_digits(trained_workspace):
    at = open_page("pages/3_Train.py", 120, check=True)
    assert at.selectbox(key="train_dataset").value == "digits"
    assert not [i for i in at.info if "looks like photos" in i.value]


def test_the_train_run_picker_says_the_status_the_run_has_now(trained_workspace):
    ws, run_id = trained_workspace
    finished = get_run(ws, run_id)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                  # a training process that has ended
    crashed = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1))
    set_status(ws, crashed.id, "running", pid=gone.pid)
    at = open_page("pages/3_Train.py", 120, check=True)
    picker = at.selectbox(key="train_watch")
    assert picker.value == crashed.id
    assert at.metric[0].value == "failed"                    # the live view found it dead
    labels = {o.split(" · ")[0]: o for o in picker.options}
    assert labels[crashed.id] == f"{crashed.id} · digits · {crashed.config['arch']} · failed"
    assert labels[run_id] == (f"{run_id} · digits · {finished.config['arch']} · finished · "
                              f"{best_val_text(finished.metrics)}")
    # the live view's figure and the runs table name their checkpoint
    picker.select(run_id).run()
    assert at.metric[2].label == "Val accuracy · best.pt"
    table = at.dataframe[0].value
    assert {"best_val_accuracy", "best_epoch", "last_val_accuracy"} <= set(table.columns)


def test_data_page_names_the_label_version_and_the_edits_since_the_last_run(trained_workspace):
    ws, _ = trained_workspace
    at = open_page("pages/1_Data.py", 120, check=True)
    version = next(m for m in at.metric if m.label == "Label version")
    assert (version.value, version.delta) == ("v1", "no edits since the last run")
    image = get_image(ws, "digits", 1)
    relabel(ws, "digits", [(1, image.label, "0" if image.label != "0" else "1")])
    at.run()
    version = next(m for m in at.metric if m.label == "Label version")
    assert (version.value, version.delta) == ("v2", "1 edit since the last run")
