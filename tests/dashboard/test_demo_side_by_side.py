"""The Demo page's side-by-side mode: two real runs answer the same image, each in its
own column, each with its own model (AppTest)."""

from __future__ import annotations

import json

from core.inference.predictor import decode_for_prediction, load_run_model, predict_one
from core.labels.selection import get_image
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run
from tests.dashboard.apptest import open_page


def test_compare_two_models_on_one_image(trained_workspace):
    ws, first = trained_workspace
    second = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1, batch_size=64,
                                        seed=1)).id
    assert train_run(ws, second)["status"] == "finished"
    at = open_page("pages/6_Demo.py", 180, check=True)
    assert at.selectbox(key="demo_run_b").disabled          # one model until compare is on
    at.slider(key="threshold").set_value(0.0)                # every prediction answers
    at.toggle(key="demo_compare").set_value(True).run()
    at.toggle(key="demo_ds_on").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    run_a, run_b = at.selectbox(key="demo_run_a").value, at.selectbox(key="demo_run_b").value
    assert {run_a, run_b} == {first, second}
    # the image shown, read from the workspace, and what each model says about it
    dataset, pick = at.selectbox(key="demo_ds").value, at.selectbox(key="demo_ds_image").value
    img = decode_for_prediction((ws.root / get_image(ws, dataset, pick.id).path).read_bytes())
    expected = [predict_one(load_run_model(ws, r), img, top_k=5).top[0][0] for r in (run_a, run_b)]
    assert [s.value for s in at.subheader[:2]] == expected
    titles = [m.value for m in at.markdown if m.value.startswith("**") and " · digits · " in m.value]
    assert len(titles) == 2 and run_a in titles[0] and run_b in titles[1]
    bars = [json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")]
    bars = [b for b in bars if b.get("type") == "bar" and b.get("orientation") == "h"]
    assert [b["y"][-1] for b in bars] == expected           # each model's top-k, best on top
    cams = [i for i in at.get("image") if "Grad-CAM for" in str(i.proto)]
    assert [str(i.proto).count("Grad-CAM for") for i in cams] == [1, 1]
    # compare off: one model again
    at.toggle(key="demo_compare").set_value(False).run()
    assert not at.exception, [e.message for e in at.exception]
    assert len([m for m in at.markdown if m.value.startswith("**") and " · digits · " in m.value]) == 1
