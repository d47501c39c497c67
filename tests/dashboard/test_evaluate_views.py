"""The Evaluate page's top-losses gallery and its confusion matrix above 25 classes
(focus mode), on real trained runs; and the confusion figure for 100 classes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.ingest import DatasetWriter
from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.evaluation.metrics import confusion_matrix
from core.labels.relabel import relabel
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run
from dashboard.evaluation import confusion_figure
from tests.dashboard.apptest import open_page

GALLERY = "true "          # the gallery's captions: "true X · pred Y (p) · loss L"


def _cells(at) -> list[list]:
    """customdata [true, predicted, count] of the confusion matrix's points."""
    for chart in at.get("plotly_chart"):
        trace = json.loads(chart.proto.spec)["data"][0]
        if trace.get("type") == "scatter" and trace.get("marker", {}).get("symbol") == "square":
            return trace
    raise AssertionError("no confusion matrix on the page")


def test_top_losses_gallery_shows_the_highest_losses_first(trained_workspace):
    ws, run_id = trained_workspace
    at = open_page("pages/5_Evaluate.py", 180, check=True)
    preds = stored_predictions(ws, run_id, "digits", "test")
    names = [str(c) for c in preds["class_names"]]
    worst = np.argsort(-preds["loss"], kind="stable")[:12]
    expected = [f"true {names[preds['y_true'][i]]} · pred {names[preds['probs'][i].argmax()]} "
                f"({preds['probs'][i].max():.2f}) · loss {preds['loss'][i]:.2f}" for i in worst]
    # six columns, filled in turn: the page tree holds column 0 (images 0 and 6), then 1…
    expected = [expected[k] for col in range(6) for k in range(col, 12, 6)]
    shown = [c.value for c in at.caption if c.value.startswith(GALLERY)]
    assert shown == expected
    in_turn = [shown[2 * (k % 6) + k // 6] for k in range(12)]
    losses = [float(c.rsplit("loss ", 1)[1]) for c in in_turn]
    assert losses == sorted(losses, reverse=True) and losses[0] > 0
    # the gallery's Grad-CAM switch: thumbnails instead, same images and captions
    cams = len(at.get("image"))
    at.toggle(key="cam_on").set_value(False).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [c.value for c in at.caption if c.value.startswith(GALLERY)] == expected
    assert len(at.get("image")) == cams


@pytest.fixture
def hundred_classes(workspace):
    """A real 100-class dataset (8 px gray images: a fixed random pattern per class plus
    noise; 6 train, 2 val, 2 test each), a model trained on it for one epoch, and 30 test
    images relabelled away from the model's prediction, so confused pairs always exist."""
    ws = workspace
    rng = np.random.default_rng(0)
    labels = [f"c{k:02d}" for k in range(100)]
    with DatasetWriter(ws, "hundred", "generated", class_order=labels) as writer:
        for _k, label in enumerate(labels):
            pattern = rng.integers(0, 256, (8, 8))
            for j, split in enumerate(["train"] * 6 + ["val"] * 2 + ["test"] * 2):
                noisy = np.clip(pattern + rng.normal(0, 20, (8, 8)), 0, 255).astype(np.uint8)
                writer.add_array(noisy, original_name=f"{label}/{j}.png", label=label, split=split)
        writer.commit()
    run = create_run(ws, TrainConfig(dataset="hundred", image_size=8, epochs=1, batch_size=64))
    assert train_run(ws, run.id)["status"] == "finished"
    evaluate_run(ws, run.id, "hundred", "test")
    preds = stored_predictions(ws, run.id, "hundred", "test")
    predicted = preds["probs"].argmax(axis=1)
    changes = [(int(i), labels[y], labels[(q + 1) % 100])
               for i, y, q in zip(preds["image_ids"][:30], preds["y_true"], predicted)
               if labels[y] != labels[(q + 1) % 100]]
    relabel(ws, "hundred", changes)
    return ws, run.id


def test_focus_mode_above_25_classes_keeps_the_confused_ones(hundred_classes):
    ws, run_id = hundred_classes
    at = open_page("pages/5_Evaluate.py", 240, check=True)
    report = json.loads((ws.runs_dir / run_id / "eval" / "hundred-test.json").read_text())
    labels = report["confusion_matrix"]["labels"]
    cm = np.asarray(report["confusion_matrix"]["matrix"])
    assert len(labels) == 100
    assert at.toggle(key="cm_focus").value is True          # on by default above 25 classes
    trace = _cells(at)
    shown = list(dict.fromkeys(t for t, _, _ in trace["customdata"]))
    assert 2 <= len(shown) <= 30
    assert len(trace["customdata"]) == len(shown) ** 2
    assert trace["mode"] == ("markers" if len(shown) > 25 else "markers+text")
    index = {name: i for i, name in enumerate(labels)}
    assert all(cm[index[t], index[p]] == n for t, p, n in trace["customdata"])
    off = cm - np.diag(np.diag(cm))
    assert all(off[index[c]].sum() + off[:, index[c]].sum() > 0 for c in shown)  # all confused
    t, p = np.unravel_index(off.argmax(), off.shape)
    assert {labels[t], labels[p]} <= set(shown)             # the worst pair is in focus
    # focus off: the whole 100×100 matrix, without numbers in the cells
    at.toggle(key="cm_focus").set_value(False).run()
    assert not at.exception, [e.message for e in at.exception]
    trace = _cells(at)
    assert len(trace["customdata"]) == 100 * 100 and trace["mode"] == "markers"
    assert sum(n for _, _, n in trace["customdata"]) == report["num_samples"]
    assert list(dict.fromkeys(t for t, _, _ in trace["customdata"])) == labels


def test_confusion_figure_for_100_classes_and_a_focus_order():
    labels = [f"class {k}" for k in range(100)]
    y_true = np.repeat(np.arange(100), 6)
    y_pred = y_true.copy()
    y_pred[::6] = (y_true[::6] + 1) % 100              # one of six goes to the next class
    y_pred[1::30] = (y_true[1::30] + 50) % 100
    cm = confusion_matrix(y_true, y_pred, 100)
    fig = confusion_figure(cm.tolist(), labels)
    trace = fig.data[0]
    assert len(trace.customdata) == 10_000 and trace.mode == "markers"   # no text at 100
    assert [list(c) for c in trace.customdata[:3]] == [[labels[0], labels[0], int(cm[0, 0])],
                                                        [labels[0], labels[1], int(cm[0, 1])],
                                                        [labels[0], labels[2], 0]]
    assert sum(c[2] for c in trace.customdata) == len(y_true)
    small = confusion_figure(cm[:10, :10].tolist(), labels[:10])
    assert trace.marker.size < small.data[0].marker.size and small.data[0].mode == "markers+text"
    assert fig.layout.height <= 900 and fig.layout.width <= 980
    # a focus order: only those classes, in that order, with their own counts
    order = [50, 3, 4, 99]
    focused = confusion_figure(cm.tolist(), labels, order=order)
    assert list(focused.layout.xaxis.categoryarray) == [labels[i] for i in order]
    assert [c[2] for c in focused.data[0].customdata] == [int(cm[i, j]) for i in order for j in order]
    assert focused.data[0].mode == "markers+text"
    # normalised: each shown row's text is its share of the row
    norm = confusion_figure(cm.tolist(), labels, normalised=True, order=order)
    assert norm.data[0].text[:4] == tuple(f"{cm[50, j] / cm[50].sum():.2f}" for j in order)


def test_a_two_class_matrix_is_sized_to_its_classes():
    """Two classes: two cells that fill a chart of their size, not two small squares in a
    large empty chart."""
    fig = confusion_figure([[30, 5], [7, 26]], ["ants", "bees"])
    m = fig.layout.margin
    plot_w, plot_h = fig.layout.width - m.l - m.r, fig.layout.height - m.t - m.b
    assert plot_w == plot_h == 2 * 110                      # square, two cells of 110 px
    assert fig.data[0].marker.size >= 0.9 * plot_w / 2     # each square fills its cell
    assert fig.layout.width <= 320 and fig.layout.height <= 320
    ten = confusion_figure(np.eye(10, dtype=int).tolist(), [str(i) for i in range(10)])
    m = ten.layout.margin
    assert ten.layout.width - m.l - m.r == 10 * 56 and ten.data[0].marker.size >= 0.9 * 56
