"""The Label page's "Does the queue pay?": the real simulated-oracle experiment, run as a
background process, found again by a fresh session, and drawn."""

from __future__ import annotations

import json
import time

from dashboard.labelling.proof_job import job_folder, proof_state, start_proof, stop_proof
from tests.dashboard.test_label_page import label_page

SMALL = ["--rounds", "3", "--seeds", "2"]


def wait_done(ws, dataset: str, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = proof_state(ws, dataset)
        if state.status != "running":
            return state
        time.sleep(1)
    raise AssertionError(f"the experiment still runs after {timeout} s")


def test_the_experiment_runs_in_the_background_and_the_page_draws_it(sample_workspace):
    ws = sample_workspace
    assert proof_state(ws, "digits").status == "none"
    pid = start_proof(ws, "digits", SMALL)
    assert proof_state(ws, "digits").status == "running"
    assert start_proof(ws, "digits", SMALL) == pid            # one at a time
    state = wait_done(ws, "digits")
    assert state.status == "done", state.error
    result = state.result
    assert (job_folder(ws, "digits") / "result.json").exists()
    assert result["seeds"] == 2 and result["strategies"][0] == "random"

    at = label_page("Queue")      # every image is labelled: the queue says so, the proof shows
    assert any("No unlabelled images" in i.value for i in at.info)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t["name"] for t in spec["data"]]
    assert names == ["Random", "Least confidence", "Margin", "Entropy",
                     "Diverse (margin over k-center)"]
    margin = next(t for t in spec["data"] if t["name"] == "Margin")
    assert margin["x"] == result["mean_curves"]["margin"]["labels"]
    assert margin["y"] == result["mean_curves"]["margin"]["accuracy"]
    table = at.dataframe[0].value
    assert list(table["strategy"])[:3] == ["Random", "Least confidence", "Margin"]
    assert list(table["seeds that reached it"])[0].endswith("of 2")
    shown = "\n".join([m.value for m in at.markdown] + [w.value for w in at.warning])
    for s in result["strategies"]:          # every verdict, word for word
        text = result["verdicts"][s]
        assert text[0].upper() + text[1:] in shown
    losers = [s for s in result["strategies"] if "does not beat random" in result["verdicts"][s]]
    assert len(at.warning) >= len(losers)   # said plainly, as warnings


def test_the_page_starts_it_and_a_reload_finds_it_running(sample_workspace):
    ws = sample_workspace
    at = label_page("Queue", "shapes")
    at.button(key="proof_start").click().run()
    assert proof_state(ws, "shapes").status == "running"
    assert any("running in the background" in i.value for i in at.info)
    again = label_page("Queue", "shapes")     # a new session: the job is in the workspace
    assert any("running in the background" in i.value for i in again.info)
    assert not [b for b in again.button if b.key == "proof_start"]
    stop_proof(ws, "shapes")
    state = wait_done(ws, "shapes", 30)
    assert state.status == "stopped"          # before it answered: no result
    assert any("stopped before it finished" in i.value for i in label_page("Queue", "shapes").info)


def test_the_settings_on_the_page_reach_the_experiment(sample_workspace):
    ws = sample_workspace
    at = label_page("Queue")
    at.number_input(key="proof_seeds").set_value(2)
    at.number_input(key="proof_rounds").set_value(3)
    at.number_input(key="proof_batch").set_value(10)
    at.slider(key="proof_target").set_value(0.9)
    at.multiselect(key="proof_strategies").set_value(["margin"])
    at.button(key="proof_start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    job = json.loads((job_folder(ws, "digits") / "job.json").read_text())
    cmd = job["cmd"]
    assert cmd[cmd.index("--seeds") + 1] == "2" and cmd[cmd.index("--rounds") + 1] == "3"
    state = wait_done(ws, "digits")
    assert state.status == "done", state.error
    result = state.result
    assert (result["seeds"], result["batch"], result["target"]) == (2, 10, 0.9)
    assert result["strategies"] == ["random", "margin"]
    assert len(result["mean_curves"]["margin"]["labels"]) == 4          # the start + 3 rounds
    again = label_page("Queue")
    assert [t["name"] for t in json.loads(again.get("plotly_chart")[0].proto.spec)["data"]] == \
        ["Random", "Margin"]
    assert any("2 seeds" in c.value for c in again.caption)
