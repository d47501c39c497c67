"""A new user, in a real browser: fix a wrong label from the gallery, bulk-relabel a
filtered selection, undo it, and see the history."""

from __future__ import annotations

import re
import sqlite3

import pytest

from tests.browser.conftest import assert_no_exception_box, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.browser


def settle(page) -> None:
    page.wait_for_timeout(300)
    wait_for_app(page)


def choose(page, label: str, option: str, attempts: int = 3) -> None:
    # 1.67's selectbox is a react-aria combobox: typing opens the filtered list. A rerun
    # that lands meanwhile can redraw the list under the click: settle and try again.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for attempt in range(attempts):
        settle(page)
        box = page.get_by_role("combobox", name=label, exact=True).first
        box.click()
        box.press("Control+a")
        box.type(option)
        try:
            page.get_by_role("option", name=option, exact=True).first.click(timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            if attempt == attempts - 1:
                raise
    settle(page)


def labels(home, ids):
    with sqlite3.connect(home / "imagelab.db") as conn:
        return [conn.execute("SELECT c.name FROM images i LEFT JOIN classes c ON c.id = i.class_id "
                             "WHERE i.id = ?", (i,)).fetchone()[0] for i in ids]


def test_fix_bulk_relabel_undo_and_history(browser, server):
    page, watcher = open_app(browser, f"{server.url}/Label", width=1500)
    assert page.locator("h1").first.inner_text().strip() == "Label"
    main = page.locator("[data-testid='stMain']")

    # 1. Fix one label from the gallery's image detail (the first digits image is a "0").
    with sqlite3.connect(server.home / "imagelab.db") as conn:
        first_id, = conn.execute("SELECT MIN(i.id) FROM images i JOIN datasets d ON d.id = i.dataset_id "
                                 "WHERE d.name = 'digits'").fetchone()
    choose(page, "New label", "6")
    main.get_by_role("button", name="Save label").click()
    main.get_by_text(f"Saved: image #{first_id} is now 6").wait_for()
    assert labels(server.home, [first_id]) == ["6"]

    # 2. Filter to class 3 and bulk-relabel every matching image to 8.
    choose(page, "Class", "3")
    with sqlite3.connect(server.home / "imagelab.db") as conn:
        threes = [r[0] for r in conn.execute(
            "SELECT i.id FROM images i JOIN classes c ON c.id = i.class_id JOIN datasets d "
            "ON d.id = i.dataset_id WHERE d.name = 'digits' AND c.name = '3'")]
    main.get_by_text(f"Select all {len(threes)} images matching this filter").click()
    settle(page)
    choose(page, "Set label to", "8")
    main.get_by_role("button", name=f"Set label of {len(threes)} images").click()
    main.get_by_text(f"Saved: {len(threes)} images set to 8").wait_for()
    assert set(labels(server.home, threes)) == {"8"}
    screenshot(page, "labels-bulk")

    # 3. Undo it from the history, and see the history.
    page.get_by_text("History", exact=True).first.click()
    settle(page)
    undo = main.get_by_role("button", name="Undo #")
    undo.wait_for()
    undo.click()
    main.get_by_text(re.compile(r"^Undone #\d+")).first.wait_for()
    assert set(labels(server.home, threes)) == {"3"}
    assert labels(server.home, [first_id]) == ["6"]
    table = main.locator("[data-testid='stTable']").first.inner_text()
    for word in ("undo", "bulk_relabel", "relabel", "import"):
        assert word in table, table
    screenshot(page, "labels-history")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
