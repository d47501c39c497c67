"""In a real browser: "Does the queue pay?" on the Label page. Run the simulated-oracle
experiment with the page's own settings, keep the page open with no clicks, and the curves,
the labels-to-target table and the verdicts appear by themselves when it ends. The picture
is the user guide's (``make guide-images``)."""

from __future__ import annotations

import pytest

from core.store.workspace import open_workspace
from dashboard.labelling.proof_job import proof_state
from tests.browser.conftest import ARTIFACTS, open_app, wait_for_app

pytestmark = pytest.mark.browser


def test_run_the_experiment_from_the_page_and_read_its_answer(browser, server):
    page, watcher = open_app(browser, f"{server.url}/Label", width=1500, height=2400)
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("radiogroup").first.get_by_text("Queue", exact=True).click()
    wait_for_app(page)
    proof = main.locator("[data-testid='stExpander']").filter(has_text="Does the queue pay?")
    proof.get_by_text("Does the queue pay?").first.click()
    for setting in ("Seeds", "Rounds", "Labels per round", "Labels per class to start",
                    "Target accuracy", "Strategies against random"):
        proof.get_by_text(setting, exact=True).first.wait_for()
    proof.get_by_role("button", name="Run the experiment").click()
    proof.get_by_text("running in the background").wait_for(timeout=60_000)
    proof.get_by_text("Measured ").wait_for(timeout=400_000)   # no click: the fragment ends it
    wait_for_app(page)
    state = proof_state(open_workspace(server.home), "digits")
    assert state.status == "done" and state.result["seeds"] == 3
    proof.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for()
    assert proof.get_by_text("Margin reached 95%").count() == 1 or \
        proof.get_by_text("Margin does not").count() == 1
    assert proof.get_by_role("button", name="Run it again").count() == 1
    proof.screenshot(path=str(ARTIFACTS / "label-queue-pays.png"))
    assert watcher.errors == []
