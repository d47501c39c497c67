"""The Demo page on a real trained run: predict, feedback, champion, export, presenter mode."""

import json

from streamlit.testing.v1 import AppTest

from core.data.catalog import dataset_info
from core.inference.registry import champion
from tests.dashboard.apptest import open_page


def open_demo() -> AppTest:
    return open_page("pages/6_Demo.py", 180)


def test_without_runs_the_page_says_so(sample_workspace):
    at = open_demo()
    assert not at.exception
    assert any("No finished runs yet" in i.value for i in at.info)


def test_predict_a_dataset_image_with_gradcam(trained_workspace):
    ws, run_id = trained_workspace
    at = open_demo()
    assert not at.exception, [e.message for e in at.exception]
    at.toggle(key="demo_ds_on").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    label = at.subheader[0].value
    assert label in [str(i) for i in range(10)] or label.startswith("unknown")
    assert any("Grad-CAM for" in str(i.proto) for i in at.get("image"))
    assert any("ms" in c.value and "calibrated" in c.value for c in at.caption)


def test_threshold_one_answers_unknown(trained_workspace):
    # predict_one answers only when the top probability >= the threshold; a softmax reaches
    # 1.0 only past a logit gap of ~37·T, which label smoothing (0.1, the default) keeps
    # the model far from: at 1.0 the answer must be "unknown", with the best guess shown.
    at = open_demo()
    at.slider(key="threshold").set_value(0.0).run()
    at.toggle(key="demo_ds_on").set_value(True).run()
    guess = at.subheader[0].value
    assert guess in [str(i) for i in range(10)]      # at 0 every prediction answers
    at.slider(key="threshold").set_value(1.0).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.subheader[0].value == f"unknown (best guess {guess})"


def test_feedback_adds_the_image_to_the_dataset(trained_workspace):
    ws, run_id = trained_workspace
    before = dataset_info(ws, "digits").num_images
    at = open_demo()
    at.toggle(key="demo_ds_on").set_value(True).run()
    at.selectbox(key="fb-class-0").select("7").run()
    at.button(key="fb-send-0").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Added to 'digits' as '7'" in s.value for s in at.success)
    info = dataset_info(ws, "digits")
    assert info.num_images == before + 1
    with ws.db() as conn:
        row = conn.execute("SELECT c.name, i.split FROM images i JOIN classes c ON c.id = i.class_id "
                           "WHERE i.original_name LIKE 'feedback/%'").fetchone()
    assert tuple(row) == ("7", "train")


def test_make_champion_and_model_card(trained_workspace):
    ws, run_id = trained_workspace
    at = open_demo()
    at.button(key="card_champion").click().run()
    assert not at.exception
    assert champion(ws, "digits") == run_id
    card = json.loads((ws.runs_dir / run_id / "card.json").read_text())
    assert card["cpu_latency_ms"] > 0


def test_export_onnx_from_the_page(trained_workspace):
    ws, run_id = trained_workspace
    at = open_demo()
    at.button(key="export_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("through the bundle's predict.py agree with the app on 100.00%" in s.value
               for s in at.success)
    assert (ws.root / "exports" / run_id / "model.onnx").exists()
    table = at.table[-1].value            # the exports by format and precision
    assert list(table.index) == ["ONNX"] and table["precision"].tolist() == ["fp32"]
    assert table["top-1 agreement"].tolist() == ["100.00% with the app, from files"]


def test_presenter_mode_hides_the_controls(trained_workspace):
    at = open_demo()
    at.button(key="presenter_on").click().run()
    assert not at.exception
    assert at.query_params.get("presenter") == ["1"] or at.query_params.get("presenter") == "1"
    assert not at.slider  # no threshold/opacity controls in presenter mode


def test_monitoring_reads_the_service_log(trained_workspace):
    import time
    ws, run_id = trained_workspace
    log = ws.runs_dir / run_id / "service" / "predictions.jsonl"
    log.parent.mkdir(parents=True)
    now = time.time()
    lines = [{"ts": now - 30, "status": 200, "label": "3", "top_class": "3", "confidence": 0.9,
              "latency_ms": 4.0, "unknown": False},
             {"ts": now - 20, "status": 200, "label": "unknown", "top_class": "8",
              "confidence": 0.3, "latency_ms": 6.0, "unknown": True},
             {"ts": now - 10, "status": 400, "latency_ms": 1.0}]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    at = open_demo()
    assert not at.exception, [e.message for e in at.exception]
    values = {m.label: m.value for m in at.metric}
    assert values["Requests"] == "3" and values["Errors"] == "1"
    assert values["Unknown answers"] == "50%"
