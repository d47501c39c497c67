"""A new user trains in the browser: Train, live curves, reload, Stop, Resume."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import assert_no_exception_box, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.browser


def train_and_watch(page, epochs: str = r"\d+", timeout: float = 90_000) -> None:
    """Press Train; wait for the run, its curves, and the epoch counter moving on by
    itself (the live view updates without any click)."""
    page.get_by_role("button", name="Train", exact=True).click()
    wait_metric(page, "Status", "running")
    first = wait_metric(page, "Epoch", rf"^[1-9]\d*/{epochs}$")
    page.locator("[data-testid='stPlotlyChart']").first.wait_for()
    page.wait_for_function(
        """(first) => [...document.querySelectorAll("[data-testid='stMetric']")]
             .some(m => m.innerText.includes('Epoch') &&
                   m.querySelector("[data-testid='stMetricValue']").innerText !== first)""",
        arg=first, timeout=timeout)


def metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def wait_metric(page, label: str, pattern: str, timeout: float = 120_000) -> str:
    page.wait_for_function(
        """([label, pattern]) => [...document.querySelectorAll("[data-testid='stMetric']")]
             .some(m => m.innerText.includes(label) &&
                   new RegExp(pattern).test(m.querySelector("[data-testid='stMetricValue']").innerText))""",
        arg=[label, pattern], timeout=timeout)
    return metric(page, label)


def test_train_watch_reload_stop_resume(browser, server):
    page, watcher = open_app(browser, f"{server.url}/Train", width=1500, height=1100)
    page.get_by_text("No runs yet").first.wait_for()
    # a long run, so that it is still going when we stop it: epochs slider to its maximum
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Epochs").get_by_role("slider")
    slider.focus()
    page.keyboard.press("End")
    wait_for_app(page)
    train_and_watch(page, epochs="100", timeout=150_000)
    screenshot(page, "train-live")

    page.reload()                               # nothing lived in the session
    wait_for_app(page)
    wait_metric(page, "Status", "running")
    assert re.match(r"\d+/100", metric(page, "Epoch"))
    page.locator("[data-testid='stPlotlyChart']").first.wait_for()

    page.get_by_role("button", name="Stop", exact=True).click()
    wait_metric(page, "Status", "stopped")
    stopped_at = int(metric(page, "Epoch").split("/")[0])
    page.get_by_role("button", name="Resume", exact=True).click()
    wait_metric(page, "Status", "running")
    page.wait_for_function(
        """(n) => [...document.querySelectorAll("[data-testid='stMetric']")]
             .some(m => m.innerText.includes('Epoch') &&
                   parseInt(m.querySelector("[data-testid='stMetricValue']").innerText) > n)""",
        arg=stopped_at, timeout=60_000)
    screenshot(page, "train-resumed")
    page.get_by_role("button", name="Stop", exact=True).click()
    wait_metric(page, "Status", "stopped")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
