"""Evaluate in a real browser: open a finished run, click a confusion-matrix cell, see its
images, relabel one, and compare two runs (curves, highlighted table, CSV download)."""

import csv
import io
import json
import re
import sqlite3

import numpy as np
import pytest

from core.evaluation.analysis import cell_images
from core.evaluation.evaluate import stored_predictions
from core.store.workspace import open_workspace
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run
from tests.browser.conftest import assert_no_exception_box, open_app, screenshot, wait_for_app
from tests.browser.test_labels import choose, settle

pytestmark = pytest.mark.browser


def test_click_cell_relabel_and_compare_runs(browser, trained_server):
    # A second, shorter run to compare with (trained for real, before the page opens).
    ws = open_workspace(trained_server.home)
    second = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=2, batch_size=64))
    assert train_run(ws, second.id)["status"] == "finished"

    page, watcher = open_app(browser, f"{trained_server.url}/Evaluate", height=1600,
                             timeout=180_000)
    main = page.locator("[data-testid='stMain']")
    page.get_by_text("Confusion matrix").first.wait_for()
    assert second.id in main.inner_text()        # the newest run is open
    report = json.loads((trained_server.home / "runs" / second.id / "eval" /
                         "digits-test.json").read_text())
    cm = np.array(report["confusion_matrix"]["matrix"])
    off = cm.copy()
    np.fill_diagonal(off, 0)
    assert off.max() > 0, "a 2-epoch 8×8 model makes mistakes to look at"
    i, j = np.unravel_index(off.argmax(), off.shape)
    n = len(cm)
    points = page.locator("[data-testid='stPlotlyChart']").first.locator(".scatterlayer .points path")
    points.first.wait_for()
    assert points.count() == n * n
    points.nth(int(i * n + j)).click(force=True)
    wait_for_app(page, timeout=120_000)
    page.get_by_text(f"{cm[i, j]} images of true class {i} predicted as {j}").first.wait_for(
        timeout=60_000)
    screenshot(page, "evaluate-cell")

    # Relabel the first image of the cell to the predicted class.
    preds = stored_predictions(ws, second.id, "digits", "test")
    labels = report["confusion_matrix"]["labels"]
    image_id = cell_images(preds, labels, labels[i], labels[j])[0]["image_id"]
    ids = main.get_by_role("combobox", name="Images to fix")
    ids.click()
    ids.type(f"#{image_id}")
    page.get_by_role("option", name=f"#{image_id}", exact=True).first.wait_for(state="attached")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    settle(page)
    choose(page, "New label", str(j))
    main.get_by_role("button", name="Relabel", exact=True).click()
    main.get_by_text(re.compile(r"Relabelled 1 image\(s\) as")).first.wait_for()
    with sqlite3.connect(trained_server.home / "imagelab.db") as conn:
        label, user = conn.execute(
            "SELECT c.name, a.user FROM images i JOIN classes c ON c.id = i.class_id "
            "JOIN label_events e ON e.image_id = i.id JOIN actions a ON a.id = e.action_id "
            "WHERE i.id = ? ORDER BY e.id DESC LIMIT 1", (image_id,)).fetchone()
    assert label == str(j) and user

    screenshot(page, "evaluate-relabel")

    # Compare with the previous run: one click, both curves, and a CSV with both runs.
    first = trained_server.run_id
    main.get_by_role("button", name=f"Compare with the previous run ({first})").click()
    main.get_by_text(f"Comparing 2 runs: {second.id}, {first}").first.wait_for(timeout=60_000)
    settle(page)
    page.wait_for_function(
        """() => [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
             .some(c => c.textContent.includes('Validation accuracy') &&
                   c.querySelectorAll('.scatterlayer .trace').length === 2)""", timeout=60_000)
    button = main.get_by_role("button", name="Download comparison (CSV)")
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=60_000) as download:
        button.click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [r["run"] for r in rows] == [second.id, first]
    assert rows[0]["epochs"] != rows[1]["epochs"] or rows[0]["image_size"] != rows[1]["image_size"]
    screenshot(page, "evaluate-compare")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
