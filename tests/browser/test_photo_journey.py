"""The photo journey in a real browser (issue #16): a user with a zip of real photos
fine-tunes ImageNet weights offline and shows the model to a stakeholder.

1 import a zip of cat and dog photos (train/ and val/ folders) through the uploader ·
2 Fine-tune: the page offers ImageNet weights first for photos, EfficientNet-Lite0 works
offline; start with the app's defaults, the run finishes · 3 Evaluate opens on the val
split (the zip has no test split) with a real 2×2 confusion matrix · 4 Demo: a photo the
model never saw gets a confident, correct answer and a Grad-CAM overlay.

The photos are the shared cats-dogs set (``../shared/data/cats-dogs``, see its README):
the test skips, saying why, where it is absent. The user guide's photo pictures come
from this test's screenshots (``make guide-images``).
"""

from __future__ import annotations

import re
import sqlite3
import zipfile

import pytest

from tests.browser.conftest import (
    ARTIFACTS,
    journey_page,
    wait_for_app,
)
from tests.browser.test_data_import import upload_archive
from tests.browser.test_labels import choose
from tests.browser.test_train import wait_metric
from tests.conftest import REPO

pytestmark = pytest.mark.browser
PHOTOS = REPO.parent / "shared" / "data" / "cats-dogs"
SHOTS = ARTIFACTS / "photo_journey"
TRAIN, VAL = 40, 12                   # photos per class: 80 to train on, 24 to validate


def photos_zip(path, classes=("cats", "dogs")) -> int:
    """A zip of the first TRAIN + VAL photos of each class in train/ and val/ folders, as
    a user's photo collection comes; the number of photos."""
    n = 0
    with zipfile.ZipFile(path, "w") as zf:
        for c in classes:
            files = sorted((PHOTOS / c).iterdir())[:TRAIN + VAL]
            for i, f in enumerate(files):
                split = "train" if i < TRAIN else "val"
                zf.write(f, f"pets/{split}/{c}/{f.name}")
                n += 1
    return n


def unseen_photo(c: str):
    """A photo of class ``c`` that is not in the zip: the last one of its folder."""
    return sorted((PHOTOS / c).iterdir())[-1]


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/cats-dogs is absent "
                    "(the shared real photos; a plain clone has none)")
def test_photo_journey_imagenet_fine_tune_offline(browser, server, tmp_path):
    page, watcher, main, shot = journey_page(browser, SHOTS, whole_page=True)

    # 1. Import the photos through the browser's uploader.
    archive = tmp_path / "pets.zip"
    count = photos_zip(archive)
    page.goto(f"{server.url}/Data")
    wait_for_app(page, timeout=180_000)
    upload_archive(page, archive, "pets")
    page.get_by_text(f"Imported {count} images into 'pets'").first.wait_for(timeout=180_000)
    wait_for_app(page)
    shot("photos-imported")

    # 2. Fine-tune: ImageNet weights are offered first for photos, and the offline
    # EfficientNet-Lite0 is the first choice; start with the app's defaults.
    page.goto(f"{server.url}/Fine-tune")
    wait_for_app(page, timeout=180_000)
    choose(page, "Fine-tune on dataset", "pets")
    wait_for_app(page, timeout=180_000)
    kinds = main.get_by_role("radiogroup").first.get_by_role("radio")
    assert kinds.first.is_checked() and not kinds.nth(1).is_checked()   # the browser agrees
    assert main.get_by_text("ImageNet weights").first.is_visible()
    source = page.get_by_role("combobox", name="ImageNet weights", exact=True)
    assert "EfficientNet-Lite0" in source.input_value() and "works offline" in source.input_value()
    main.get_by_text("224 px").first.wait_for(timeout=120_000)       # the weights' own size
    main.get_by_role("button", name="Start fine-tuning").click()
    wait_metric(page, "Status", "running|finished")
    wait_metric(page, "Status", "finished", timeout=400_000)
    with sqlite3.connect(server.home / "imagelab.db") as conn:
        run_id, kind, best = conn.execute(
            "SELECT id, kind, json_extract(metrics_json, '$.best_val_accuracy') FROM runs "
            "ORDER BY created_at DESC").fetchone()
    assert kind == "finetune" and best >= 0.85, (run_id, kind, best)
    shot("finetune-imagenet")

    # 3. Evaluate opens on the val split (the zip has none for test): a 2×2 matrix.
    page.goto(f"{server.url}/Evaluate")
    wait_for_app(page, timeout=180_000)
    assert run_id in main.inner_text()
    main.get_by_text("Opened on the val split").first.wait_for()
    chart = page.locator("[data-testid='stPlotlyChart']").first
    chart.locator(".scatterlayer .points path").first.wait_for()
    counts = [int(t) for t in chart.locator(".scatterlayer .textpoint text").all_text_contents()]
    assert len(counts) == 4 and sum(counts) == 2 * VAL, counts
    assert counts[0] + counts[3] >= 0.85 * sum(counts), counts       # the diagonal
    shot("evaluate-photos")

    # 4. Demo: a photo the model never saw, a confident correct answer with Grad-CAM.
    page.goto(f"{server.url}/Demo")
    wait_for_app(page, timeout=180_000)     # the newest finished run is preselected
    assert run_id in main.inner_text()
    query = unseen_photo("cats")
    page.get_by_role("tab", name="Upload").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(query))
    wait_for_app(page, timeout=120_000)
    main.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
    answer = re.search(r"^(cats|dogs|unknown[^\n]*)\n+(\d+\.\d)% \(calibrated", main.inner_text(),
                       re.M)
    assert answer and answer.group(1) == "cats" and float(answer.group(2)) >= 80, \
        main.inner_text()[:2000]
    overlay = main.locator("[data-testid='stImage']").filter(has_text="Grad-CAM for cats")
    overlay.locator("img").first.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",       # drawn
                           arg=overlay.locator("img").first.element_handle(), timeout=30_000)
    shot("demo-photo")

    # The user guide's photo section shows exactly these pictures.
    guide = (REPO / "docs" / "USER_GUIDE.md").read_text()
    assert {p.stem for p in SHOTS.glob("*.png")} == set(
        re.findall(r"images/photo_journey/([\w-]+)\.png", guide))

    assert watcher.errors == [], watcher.errors
    page.close()
