"""The Fine-tune page in AppTest: a workspace run as the start, the group tree, the LR
finder and its one-click rate, the quick probe, a real background fine-tuning run, and
the comparison with training from scratch."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from core.training import jobs
from core.training.runs import get_run, list_runs
from tests.dashboard.apptest import open_page


def finetune_page() -> AppTest:
    return open_page("pages/4_Fine-tune.py", 180, check=True)


def test_finetune_a_workspace_run_onto_another_dataset(trained_workspace):
    ws, run_id = trained_workspace
    at = finetune_page()
    assert at.selectbox(key="ft_source_run").value == run_id
    at.selectbox(key="ft_dataset").select("mnist-5k").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("10 classes keep their rows" in s.value for s in at.success)
    at.radio(key="ft_preset").set_value("Head only (linear probe)").run()
    at.number_input(key="ft_epochs").set_value(1).run()
    at.button(key="ft_lr_find").click().run()
    assert not at.exception, [e.message for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["type"] == "log"
    use = at.button(key="ft_lr_use")
    suggested = float(use.label.rsplit(" ", 1)[1])
    use.click().run()
    assert abs(at.number_input(key="ft_lr").value - suggested) / suggested < 0.01
    at.button(key="ft_probe").click().run()
    assert not at.exception, [e.message for e in at.exception]
    at.button(key="ft_start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    runs = [r for r in list_runs(ws) if r.id != run_id]
    assert len(runs) == 1
    run = get_run(ws, runs[0].id)
    ft = run.config["finetune"]
    # head only: every group but the head frozen (whatever the default architecture's groups)
    assert ft["frozen"] == [g for g in ft["groups"] if g != "head"] and len(ft["frozen"]) >= 3
    assert ft["origin"]["parent_run_id"] == run_id
    assert run.config["epochs"] == 1 and abs(run.config["lr"] - suggested) / suggested < 0.01
    at.button(key="ft_compare").click().run()
    assert not at.exception, [e.message for e in at.exception]
    pair = json.loads(next(ws.runs_dir.glob("*/compare.json")).read_text())
    scratch = get_run(ws, pair["scratch_run"])
    assert scratch.config.get("finetune") is None
    assert scratch.config["epochs"] == 1 and scratch.config["arch"] == run.config["arch"]
    for r in list_runs(ws):
        if r.status in ("queued", "running"):
            jobs.stop_run(ws, r.id)
