"""In a real browser: take the next image from the active-learning queue and accept the
model's suggested label with the Enter key; the label is saved and the queue moves on to the
next image in the strategy's order."""

from __future__ import annotations

import re
import sqlite3

import pytest

from core.active.queue import active_queue
from core.labels import relabel
from core.labels.selection import ImageFilter, find_images
from core.store.workspace import open_workspace
from tests.browser.conftest import open_app, screenshot, wait_for_app

pytestmark = pytest.mark.browser


def shown_id(main) -> int:
    text = main.locator("[data-testid='stText']").filter(has_text=re.compile(r"^#\d+ ")).first
    return int(text.inner_text().split(" ", 1)[0].lstrip("#"))


def test_accept_the_suggested_label_by_key(browser, trained_server):
    ws = open_workspace(trained_server.home)
    rows = find_images(ws, "digits", ImageFilter(split="train"), limit=20)
    relabel.set_label(ws, "digits", {r.id: r.label for r in rows}, None)
    ranked = active_queue(ws, "digits", "margin", run_id=trained_server.run_id).items

    page, watcher = open_app(browser, f"{trained_server.url}/Label", width=1500)
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("radiogroup").first.get_by_text("Queue", exact=True).click()
    wait_for_app(page)
    accept = main.get_by_role("button", name=re.compile(r"^Accept: "))
    accept.wait_for(timeout=60_000)
    first = ranked[0]
    assert shown_id(main) == first.image_id                    # the margin order's first
    assert f"Accept: {first.predicted}" in accept.inner_text()
    main.get_by_text(re.compile(r"score \d\.\d{3}")).first.wait_for()
    wait_for_app(page)
    screenshot(page, "active-queue")

    page.locator("h1").first.click()          # focus on the page, not on a widget
    page.keyboard.press("Enter")
    main.get_by_text(f"Saved: #{first.image_id} is {first.predicted}").wait_for(timeout=30_000)
    wait_for_app(page)
    with sqlite3.connect(trained_server.home / "imagelab.db") as conn:
        label, = conn.execute("SELECT c.name FROM images i JOIN classes c ON c.id = i.class_id "
                              "WHERE i.id = ?", (first.image_id,)).fetchone()
    assert label == first.predicted
    assert shown_id(main) == ranked[1].image_id                # the next image in the order
    assert watcher.errors == []
