"""The Evaluate page on a real trained run (AppTest; clicks on the plot are browser-tested)."""

import json

from streamlit.testing.v1 import AppTest

from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.labels.history import label_history
from core.labels.relabel import relabel
from core.labels.selection import get_image
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run
from tests.dashboard.apptest import open_page


def open_evaluate() -> AppTest:
    return open_page("pages/5_Evaluate.py", 180)


def test_without_runs_the_page_says_what_to_do(sample_workspace):
    at = open_evaluate()
    assert not at.exception
    assert any("No finished runs yet" in i.value for i in at.info)


def test_metrics_table_and_clickable_matrix(trained_workspace):
    ws, run_id = trained_workspace
    at = open_evaluate()
    assert not at.exception, [e.message for e in at.exception]
    report = json.loads((ws.runs_dir / run_id / "eval" / "digits-test.json").read_text())
    assert at.metric[0].value == f"{report['accuracy']:.3f}"
    table = at.dataframe[0].value
    assert list(table["f1"]) == sorted(table["f1"])  # weakest first
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    trace = spec["data"][0]
    assert trace["type"] == "scatter" and len(trace["customdata"]) == 100
    counts = {(t, p): n for t, p, n in trace["customdata"]}
    assert sum(counts.values()) == 269
    assert counts == {(str(i), str(j)): report["confusion_matrix"]["matrix"][i][j]
                      for i in range(10) for j in range(10)}


def mislabel_test_images(ws, run_id: str, count: int = 4,
                         dataset: str = "digits") -> tuple[str, str, list[int]]:
    """Give ``count`` test images that the model predicts as one class P a label W != P,
    through core's label actions, so the evaluation has the confused pair (W → P) with
    at least ``count`` images whatever the model learnt. Returns (W, P, image ids)."""
    evaluate_run(ws, run_id, dataset, "test")
    preds = stored_predictions(ws, run_id, dataset, "test")
    labels = [str(c) for c in preds["class_names"]]
    predicted = preds["probs"].argmax(axis=1)
    p = int(predicted[0])
    wrong = labels[(p + 1) % len(labels)]
    ids = [int(i) for i, y, q in zip(preds["image_ids"], preds["y_true"], predicted)
           if q == p and labels[y] != wrong][:count]
    assert len(ids) == count
    relabel(ws, dataset, [(i, get_image(ws, dataset, i).label, wrong) for i in ids])
    return wrong, labels[p], ids


def test_pick_a_confused_pair_then_relabel_one_image(trained_workspace):
    ws, run_id = trained_workspace
    wrong, predicted, mislabelled = mislabel_test_images(ws, run_id)
    at = open_evaluate()
    assert not at.exception, [e.message for e in at.exception]
    pair = at.selectbox(key="cm_pair")
    assert len(pair.options) > 1     # the mislabelled images make at least one pair
    pair.select((wrong, predicted)).run()
    assert not at.exception, [e.message for e in at.exception]
    key = f"cell-{wrong}-{predicted}-ids"
    ids = [int(o.lstrip("#")) for o in at.multiselect(key=key).options]
    assert set(mislabelled) <= set(ids)
    image_id = mislabelled[0]
    at.multiselect(key=key).select(image_id).run()
    at.button(key=key.replace("-ids", "-relabel")).click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Relabelled 1 image" in s.value for s in at.success)
    assert get_image(ws, "digits", image_id).label == predicted   # the fix is the prediction
    history = label_history(ws, "digits", image_id=image_id)
    assert [(h.kind, h.old_label, h.new_label) for h in history[:1]] == \
        [("relabel", wrong, predicted)]


def test_compare_with_the_previous_run_in_one_click(trained_workspace):
    ws, first = trained_workspace
    second = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1, batch_size=64))
    assert train_run(ws, second.id)["status"] == "finished"
    at = open_evaluate()
    assert at.multiselect(key="compare_runs").value == [second.id]   # the newest run is open
    assert at.dataframe[1].value.shape[0] == 1
    at.button(key="cmp_previous").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.multiselect(key="compare_runs").value == [second.id, first]
    assert any(f"Comparing 2 runs: {second.id}, {first}" in c.value for c in at.caption)
    table = at.dataframe[1].value
    assert list(table["run"]) == [second.id, first]
    # each accuracy named by its checkpoint, the label version by its number
    assert {"metric:val_accuracy (best.pt)", "metric:val_accuracy (last.pt, final epoch)",
            "metric:epoch of best.pt"} <= set(table.columns)
    assert list(table["label_version"]) == ["v1", "v1"]
    acc = json.loads(at.get("plotly_chart")[-2].proto.spec)
    assert {t["name"] for t in acc["data"]} >= {second.id, first}
    csv = at.get("download_button")[-1].proto
    assert csv.label == "Download comparison (CSV)"
