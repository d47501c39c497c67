"""The Train page in AppTest: defaults from the dataset, a real background run started
by the Train button, its live view and the runs table; stop from the page."""

from __future__ import annotations

import json
import time

from streamlit.testing.v1 import AppTest

from core.training.runs import get_run, list_runs, read_metrics
from tests.dashboard.apptest import open_page


def train_page() -> AppTest:
    return open_page("pages/3_Train.py", 120, check=True)


def wait_until(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_defaults_follow_the_dataset(sample_workspace):
    at = train_page()
    assert at.selectbox(key="train_dataset").value == "digits"
    assert at.slider(key="train_digits_size").value == 16        # 8 px digits, upsampled
    at.selectbox(key="train_dataset").select("shapes").run()
    assert not at.exception
    assert at.slider(key="train_shapes_size").value == 32
    assert at.toggle(key="train_shapes_flip").value is True
    assert at.selectbox(key="train_shapes_arch").value == "compact-deep"
    at.button(key="train_estimate").click().run()              # a few real timed steps
    assert not at.exception
    estimate = next(i.value for i in at.info if "per epoch" in i.value)
    assert "steps at" in estimate and "images/s" in estimate
    version = at.selectbox(key="train_shapes_version")
    assert version.value is None and "current (v" in version.format_func(version.value)


def test_train_button_starts_a_background_run_and_the_page_shows_it(sample_workspace):
    ws = sample_workspace
    at = train_page()
    assert any("No runs yet" in c.value for c in at.caption)
    at.slider(key="train_digits_size").set_value(8)
    at.slider(key="train_digits_epochs").set_value(60)
    at.button(key="train_start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    runs = list_runs(ws)
    assert len(runs) == 1 and runs[0].config["epochs"] == 60 and runs[0].config["image_size"] == 8
    run = runs[0]
    wait_until(lambda: any(r["type"] == "epoch" for r in read_metrics(run.folder)))
    at = train_page()          # a fresh session, as after a reload: the run is still there
    assert at.selectbox(key="train_watch").value == run.id
    assert at.metric[0].value == "running"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in spec["data"]}
    assert {"train loss", "val accuracy", "learning rate"} <= names
    assert run.id in at.dataframe[0].value["run"].tolist()
    at.button(key=f"stop_{run.id}").click().run()
    wait_until(lambda: get_run(ws, run.id).status == "stopped")
    at.run()
    assert at.metric[0].value == "stopped"
    assert at.button(key=f"resume_{run.id}")      # offered once stopped


def test_bad_dataset_shows_a_clear_error(sample_workspace):
    from core.labels.classes import add_class
    add_class(sample_workspace, "digits", "empty")
    at = train_page()
    assert any("'empty'" in e.value and "no labelled images" in e.value for e in at.error)
