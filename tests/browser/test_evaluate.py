"""Evaluate in a real browser: click a confusion-matrix cell, see its images, relabel one."""

import json

import numpy as np
import pytest

from tests.browser.conftest import PageWatcher, assert_no_exception_box, screenshot, wait_for_app

pytestmark = pytest.mark.browser


def test_click_a_confusion_cell_shows_its_images_and_relabel(browser, trained_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    watcher = PageWatcher(page)
    page.goto(f"{trained_server.url}/Evaluate")
    wait_for_app(page, timeout=180_000)
    page.get_by_text("Confusion matrix").first.wait_for()
    report = json.loads((trained_server.home / "runs" / trained_server.run_id / "eval" /
                         "digits-test.json").read_text())
    cm = np.array(report["confusion_matrix"]["matrix"])
    off = cm.copy()
    np.fill_diagonal(off, 0)
    i, j = np.unravel_index(off.argmax(), off.shape) if off.max() else (0, 0)
    n = len(cm)
    points = page.locator("[data-testid='stPlotlyChart']").first.locator(".scatterlayer .points path")
    points.first.wait_for()
    assert points.count() == n * n
    points.nth(int(i * n + j)).click(force=True)
    wait_for_app(page, timeout=120_000)
    expected = f"{cm[i, j]} images of true class {i} predicted as {j}"
    page.get_by_text(expected).first.wait_for(timeout=60_000)
    screenshot(page, "evaluate-cell")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
