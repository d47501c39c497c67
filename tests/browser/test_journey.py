"""The new user's whole journey in a real browser, against a server started as `make run`
starts it, with a screenshot at each step in tests/artifacts/journey/.

1 home · 2 import a zip through the uploader (three shape classes, some corrupt files) ·
3 the report lists the corrupt files · 4 fix two labels, undo one · 5 train, watch the
curves update · 6 reload mid-training, the run is still going · 7 Evaluate: click a
confusion cell, see its images · 8 fine-tune from the run onto a second dataset ·
9 Demo: pick the trained model, upload an image, prediction with Grad-CAM · 10 export to ONNX, checked from files.
"""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.data.samples import render_shape
from tests.browser.conftest import (
    ARTIFACTS,
    StreamlitServer,
    assert_no_exception_box,
    journey_page,
    open_app,
    wait_for_app,
)
from tests.browser.test_data_import import upload_archive
from tests.browser.test_labels import choose, settle
from tests.browser.test_train import train_and_watch, wait_metric
from tests.conftest import REPO, copy_workspace

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "journey"
CLASSES = ("circle", "square", "triangle")


def shapes_zip(path, per_class=150) -> tuple:
    good = 0
    with zipfile.ZipFile(path, "w") as zf:
        for c in CLASSES:
            for i in range(per_class):
                rng = np.random.default_rng([7, CLASSES.index(c), i])
                buf = io.BytesIO()
                Image.fromarray(render_shape(c, 32, rng)).save(buf, format="PNG")
                zf.writestr(f"shapes3/{c}/{i:03d}.png", buf.getvalue())
                good += 1
        zf.writestr("shapes3/circle/corrupt.png", b"this is not an image at all")
        zf.writestr("shapes3/square/truncated.png", buf.getvalue()[:60])
    return good, ["shapes3/circle/corrupt.png", "shapes3/square/truncated.png"]


@pytest.fixture
def make_run_server(_samples_master, tmp_path):
    home = tmp_path / "ws"
    copy_workspace(_samples_master, home)
    srv = StreamlitServer(home, launcher=True).start(timeout=90)
    yield srv
    srv.stop()


def db(server):
    return sqlite3.connect(server.home / "imagelab.db")


def test_new_user_journey(browser, make_run_server, tmp_path):
    server = make_run_server
    page, watcher, main, shot = journey_page(browser, SHOTS)

    # 1. Home
    page.goto(server.url)
    wait_for_app(page)
    page.locator("[data-testid='stTable']").first.wait_for()
    assert "mnist-5k" in page.locator("[data-testid='stTable']").first.inner_text()
    shot("home")

    # 2–3. Import a zip through the browser uploader; the report lists the corrupt files.
    good, corrupt = shapes_zip(tmp_path / "shapes3.zip")
    page.goto(f"{server.url}/Data")
    wait_for_app(page)
    upload_archive(page, tmp_path / "shapes3.zip", "shapes3")
    page.get_by_text(f"Imported {good} images into 'shapes3'").first.wait_for(timeout=120_000)
    wait_for_app(page)
    report = main.inner_text()
    assert "2 file(s) skipped" in report
    for f in corrupt:
        assert f"shapes3.zip:{f}" in report
    shot("import-report")

    # 4. Fix two labels in the gallery, undo one.
    page.goto(f"{server.url}/Label")
    wait_for_app(page)
    choose(page, "Dataset", "shapes3")
    with db(server) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT i.id FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "WHERE d.name = 'shapes3' ORDER BY i.id LIMIT 2")]
    for image_id, new in zip(ids, ("triangle", "square")):
        choose(page, "Image", f"#{image_id}")
        choose(page, "New label", new)
        main.get_by_role("button", name="Save label").click()
        main.get_by_text(f"Saved: image #{image_id} is now {new}").wait_for()
    shot("labels-fixed")
    page.get_by_text("History", exact=True).first.click()
    settle(page)
    main.get_by_role("button", name="Undo #").click()
    main.get_by_text(re.compile(r"^Undone #\d+")).first.wait_for()
    with db(server) as conn:
        now = [conn.execute("SELECT c.name FROM images i JOIN classes c ON c.id = i.class_id "
                            "WHERE i.id = ?", (i,)).fetchone()[0] for i in ids]
    assert now[0] == "triangle" and now[1] != "square"
    shot("labels-undo")

    # 5–6. Train a small model, watch the curves update, reload mid-training.
    page.goto(f"{server.url}/Train")
    wait_for_app(page)
    choose(page, "Dataset", "shapes3")
    train_and_watch(page)
    shot("train-live")
    page.reload()
    wait_for_app(page)
    status = wait_metric(page, "Status", "running|finished")
    assert status in ("running", "finished")
    shot("train-after-reload")
    wait_metric(page, "Status", "finished", timeout=300_000)
    with db(server) as conn:
        run_id = conn.execute("SELECT id FROM runs WHERE status = 'finished' "
                              "ORDER BY created_at DESC").fetchone()[0]
    shot("train-finished")

    # 7. Evaluate: click a confusion-matrix cell and see its images.
    page.goto(f"{server.url}/Evaluate")
    wait_for_app(page, timeout=180_000)   # the newest finished run is preselected
    assert run_id in main.inner_text()
    chart = page.locator("[data-testid='stPlotlyChart']").first
    points = chart.locator(".scatterlayer .points path")
    points.first.wait_for()
    assert points.count() == 9
    # The cell to click is read from the matrix's own counts (row-major, true × predicted),
    # never fixed: the fullest cell always has images, whatever this machine's model learnt.
    counts = [int(t) for t in chart.locator(".scatterlayer .textpoint text").all_text_contents()]
    assert len(counts) == 9 and sum(counts) > 0, counts
    cell = max(range(9), key=lambda k: (counts[k], k // 3 == k % 3))
    true, predicted = CLASSES[cell // 3], CLASSES[cell % 3]
    points.nth(cell).click(force=True)
    wait_for_app(page, timeout=120_000)
    page.get_by_text(re.compile(
        rf"images of true class {true} predicted as {predicted}")).first.wait_for()
    assert main.locator("[data-testid='stImage']").count() >= 1
    shot("evaluate-cell")

    # 8. Fine-tune from the run onto a second dataset, with the learning-rate finder.
    page.goto(f"{server.url}/Fine-tune")
    wait_for_app(page, timeout=180_000)
    choose(page, "Fine-tune on dataset", "shapes")
    wait_for_app(page, timeout=180_000)
    main.get_by_text("circle").first.wait_for()          # the head report names kept rows
    epochs = main.get_by_label("Epochs")
    epochs.fill("3")
    epochs.press("Enter")
    settle(page)
    main.get_by_role("button", name="Find the learning rate").click()
    use = main.get_by_role("button", name=re.compile(r"^Use this rate: "))
    use.wait_for(timeout=180_000)
    use.click()
    settle(page)
    main.get_by_role("button", name="Start fine-tuning").click()
    wait_metric(page, "Status", "running|finished")
    wait_metric(page, "Status", "finished", timeout=300_000)
    with db(server) as conn:
        ft_run, kind, parent = conn.execute(
            "SELECT id, kind, parent_run_id FROM runs ORDER BY created_at DESC").fetchone()
    assert ft_run != run_id and kind == "finetune" and parent == run_id
    shot("finetune")

    # 9. Demo: upload an image, get a prediction with Grad-CAM. The newest model (the short
    # fine-tune) is preselected; the demo shows the trained shapes3 model, which has learnt
    # its three classes (a confident, correct answer for the guide's picture).
    page.goto(f"{server.url}/Demo")
    wait_for_app(page, timeout=180_000)
    choose(page, "Model", run_id)
    wait_for_app(page, timeout=180_000)
    sample = tmp_path / "query.png"
    Image.fromarray(render_shape("square", 32, np.random.default_rng(123))).save(sample)
    page.get_by_role("tab", name="Upload").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(sample))
    wait_for_app(page, timeout=120_000)
    main.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
    assert re.search(r"\d+\.\d ms", main.inner_text())
    shot("demo-prediction")

    # 10. Export to ONNX, checked against PyTorch.
    page.get_by_role("button", name="Export and check").click()
    main.get_by_text(re.compile(r"predict\.py agree with the app on 100\.00% of answers")
                     ).first.wait_for(timeout=300_000)
    assert (server.home / "exports" / run_id / "model.onnx").exists()
    shot("export-onnx")

    # The user guide shows exactly these pictures.
    guide = (REPO / "docs" / "USER_GUIDE.md").read_text()
    assert {p.stem for p in SHOTS.glob("*.png")} == set(re.findall(r"images/journey/([\w-]+)\.png",
                                                                     guide))

    assert watcher.errors == [], watcher.errors
    page.close()


@pytest.mark.parametrize("path", ["", "Data", "Explore", "Label", "Train", "Fine-tune", "Evaluate",
                                  "Demo"])
def test_every_page_by_direct_url_on_a_fresh_make_run_server(browser, make_run_server, path):
    page, watcher = open_app(browser, f"{make_run_server.url}/{path}", width=1300, height=900,
                             timeout=120_000)
    page.locator("h1").first.wait_for()
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
