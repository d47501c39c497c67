"""The Demo in a real browser: champion model, an uploaded image with Grad-CAM and an
"unknown" threshold, a wrong prediction sent to a dataset, and an ONNX export checked from
files, shown in the export table."""

import re
import sqlite3

import pytest

from tests.browser.conftest import assert_no_exception_box, open_app, screenshot, wait_for_app
from tests.browser.test_labels import choose, settle

pytestmark = pytest.mark.browser


def test_champion_predict_threshold_feedback_export(browser, trained_server, tmp_path):
    home = trained_server.home
    with sqlite3.connect(home / "imagelab.db") as conn:
        path, = conn.execute("SELECT path FROM images WHERE original_name = 'digits/000003.png'"
                             ).fetchone()
    image = tmp_path / "three.png"
    image.write_bytes((home / path).read_bytes())

    page, watcher = open_app(browser, f"{trained_server.url}/Demo", height=1500, timeout=180_000)
    main = page.locator("[data-testid='stMain']")

    # Make the run the champion from its model card.
    main.get_by_role("button", name="Export and check").wait_for(timeout=180_000)  # all drawn
    main.get_by_text("Model card:").first.click()
    main.get_by_role("button", name="Make champion").click()
    settle(page)
    main.get_by_text(re.compile(r"Model card: ★ ")).first.wait_for(timeout=60_000)

    # Upload an image: a prediction, its latency and a Grad-CAM overlay.
    page.get_by_role("tab", name="Upload").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(image))
    wait_for_app(page, timeout=120_000)
    main.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
    assert re.search(r"\d+\.\d ms", main.inner_text())

    # A threshold of 1.0 makes any answer "unknown".
    slider = page.locator("[data-testid='stSlider']").filter(has_text="unknown").get_by_role("slider")
    slider.focus()
    page.keyboard.press("End")
    wait_for_app(page, timeout=120_000)
    main.get_by_text(re.compile(r"^unknown \(best guess")).first.wait_for()
    screenshot(page, "demo-unknown")

    # "Wrong? Tell us the right class": the image joins the dataset with that label.
    main.get_by_text("Wrong? Tell us the right class").first.click()
    pop = page.locator("[data-testid='stPopoverBody']")
    choose(page, "The right class", "3")
    pop.get_by_role("button", name="Send").click()
    row = None
    for _ in range(120):
        with sqlite3.connect(home / "imagelab.db") as conn:
            row = conn.execute(
                "SELECT c.name, a.user FROM images i JOIN classes c ON c.id = i.class_id "
                "JOIN label_events e ON e.image_id = i.id JOIN actions a ON a.id = e.action_id "
                "WHERE i.original_name LIKE 'feedback/%'").fetchone()
        if row:
            break
        page.wait_for_timeout(500)
    assert row and row[0] == "3" and row[1]

    # Export to ONNX, checked from the validation files through the bundle's predict.py,
    # and the table of exports by format and precision.
    page.keyboard.press("Escape")
    main.get_by_role("button", name="Export and check").click()
    main.get_by_text(re.compile(r"predict\.py agree with the app on 100\.00% of answers")
                     ).first.wait_for(timeout=300_000)
    assert (home / "exports" / trained_server.run_id / "model.onnx").exists()
    table = main.locator("[data-testid='stTable']").last
    table.get_by_text("100.00% with the app, from files").wait_for(timeout=60_000)
    headers = table.locator("th").all_inner_texts()
    for column in ("precision", "size", "latency b1 p50/p95 ms", "accuracy (val)",
                   "top-1 agreement"):
        assert column in headers, headers
    assert "ONNX" in table.inner_text() and "fp32" in table.inner_text()
    screenshot(page, "demo-export")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
