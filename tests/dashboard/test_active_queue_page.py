"""The Label page's active-learning queue under AppTest, on a workspace with a real run."""

from __future__ import annotations

import time

import pytest

from core.active.queue import active_queue
from core.labels import relabel
from core.labels.selection import ImageFilter, find_images
from core.training import jobs
from core.training.runs import get_run, list_runs
from tests.dashboard.test_label_page import label_of, label_page, texts

UNLABELLED = 30


@pytest.fixture
def queue_ws(trained_workspace, monkeypatch):
    """The trained digits workspace with the labels of 30 images cleared: (ws, run id,
    {image id: the label the run trained on})."""
    ws, run_id = trained_workspace
    monkeypatch.setenv("IMAGELAB_USER", "tester")
    rows = find_images(ws, "digits", ImageFilter(split="train"), limit=UNLABELLED)
    relabel.set_label(ws, "digits", {r.id: r.label for r in rows}, None)
    return ws, run_id, {r.id: r.label for r in rows}


def margin(item) -> float:
    p = [q for _, q in item.probabilities]
    return p[0] - p[1]


def queue_buttons(at):
    return [b for b in at.button if b.key and b.key.startswith("queue_btn_")]


def test_margin_order_shows_the_smallest_margin_first_and_enter_accepts(queue_ws):
    ws, run_id, ids = queue_ws
    at = label_page("Queue")
    at.selectbox(key="queue_strategy").select("margin").run()
    assert at.selectbox(key="queue_run").value == run_id
    ranked = active_queue(ws, "digits", "margin", run_id=run_id).items
    assert sorted(i.image_id for i in ranked) == sorted(ids)      # every unlabelled image
    first = min(ranked, key=margin)                                # the model's closest call
    assert ranked[0].image_id == first.image_id
    assert f"#{first.image_id} " in at.text[0].value
    assert any(f"score {first.score:.3f}" in c.value for c in at.caption)   # why it is next
    accept = at.button(key="queue_accept")
    assert accept.proto.shortcut.lower() == "enter" and first.predicted in accept.label
    buttons = queue_buttons(at)
    # the predicted class is pre-selected and drawn first; each class keeps its own key
    assert buttons[0].label.startswith(first.predicted)
    assert [b.label.split(" ")[0] for b in buttons if b.proto.type == "primary"] == [first.predicted]
    assert all(b.proto.shortcut == b.label.split(" ")[0] for b in buttons)
    accept.click().run()
    assert label_of(ws, first.image_id) == first.predicted
    assert f"Saved: #{first.image_id} is {first.predicted}" in texts(at)
    assert f"#{ranked[1].image_id} " in at.text[0].value           # advanced in margin order


def test_a_digit_key_labels_against_the_suggestion_and_previous_goes_back(queue_ws):
    ws, run_id, ids = queue_ws
    at = label_page("Queue")
    ranked = active_queue(ws, "digits", "margin", run_id=run_id).items
    other = next(name for name, _ in ranked[0].probabilities[1:])
    next(b for b in queue_buttons(at) if b.proto.shortcut == other).click().run()
    assert label_of(ws, ranked[0].image_id) == other
    assert f"#{ranked[1].image_id} " in at.text[0].value
    at.button(key="queue_prev").click().run()
    assert f"#{ranked[0].image_id} " in at.text[0].value
    assert f"now: {other}" in at.text[0].value


def test_entropy_orders_by_entropy(queue_ws):
    ws, run_id, _ = queue_ws
    at = label_page("Queue")
    at.selectbox(key="queue_strategy").select("entropy").run()
    ranked = active_queue(ws, "digits", "entropy", run_id=run_id).items
    assert [i.score for i in ranked] == sorted((i.score for i in ranked), reverse=True)
    assert f"#{ranked[0].image_id} " in at.text[0].value
    assert any("by entropy" in c.value for c in at.caption)
    at.selectbox(key="queue_strategy").select("diverse").run()   # no embeddings stored
    assert any("ordered by margin" in i.value for i in at.info)   # computed by Explore, not here
    assert f"#{active_queue(ws, 'digits', 'margin', run_id=run_id).items[0].image_id} " \
        in at.text[0].value


def test_without_a_run_the_queue_is_random_and_says_why(queue_ws):
    ws, _, _ = queue_ws
    rows = find_images(ws, "shapes", limit=5)
    relabel.set_label(ws, "shapes", {r.id: r.label for r in rows}, None)
    at = label_page("Queue", "shapes")
    assert any("no finished run yet" in i.value for i in at.info)
    assert at.selectbox(key="queue_run").value is None
    shown = next(r.id for r in rows if f"#{r.id} " in at.text[0].value)
    assert not [b for b in at.button if b.key == "queue_accept"]    # nothing to suggest
    next(b for b in queue_buttons(at) if b.label.startswith("circle")).click().run()
    assert label_of(ws, shown) == "circle"
    assert f"#{shown} " not in at.text[0].value


def test_retrain_every_n_labels_starts_a_normal_run_and_reranks_by_it(queue_ws):
    ws, run_id, trained_on = queue_ws
    at = label_page("Queue")
    at.toggle(key="queue_retrain").set_value(True).run()
    at.number_input(key="queue_retrain_n").set_value(2).run()
    assert any("0 of 2 new labels" in c.value for c in at.caption)
    for _ in range(2):    # labels the run did not train on (it saw these images labelled)
        shown = int(at.text[0].value.split(" ", 1)[0].lstrip("#"))
        other = "1" if trained_on[shown] != "1" else "2"
        next(b for b in queue_buttons(at) if b.proto.shortcut == other).click().run()
    runs = [r for r in list_runs(ws, dataset="digits") if r.id != run_id]
    assert len(runs) == 1 and runs[0].kind == "train"             # a normal run, listed
    new = runs[0]
    assert new.config["arch"] == get_run(ws, run_id).config["arch"]
    assert any(f"Retraining: run **{new.id}**" in i.value for i in at.info)
    deadline = time.time() + 240
    while get_run(ws, new.id).status in ("queued", "running") and time.time() < deadline:
        time.sleep(1)
        jobs.refresh(ws)
    assert get_run(ws, new.id).status == "finished"
    at.run()          # the fragment sees it finished and ranks the queue by it
    at.run()
    assert at.selectbox(key="queue_run").value == new.id
    ranked = active_queue(ws, "digits", "margin", run_id=new.id).items
    assert f"#{ranked[0].image_id} " in at.text[0].value
    assert any("0 of 2 new labels" in c.value for c in at.caption)
