"""A new user imports a zip through the browser's file uploader and sees the gallery."""

import pytest

from tests.browser.conftest import PageWatcher, assert_no_exception_box, screenshot, wait_for_app
from tests.core.data.corpus import png_bytes, zip_with

pytestmark = pytest.mark.browser


def test_upload_a_zip_and_see_the_gallery(browser, server, tmp_path):
    entries = [(f"my-pets/{c}/{i}.png", png_bytes(100 + k)) for k, (c, i) in
               enumerate((c, i) for c in ("cat", "dog") for i in range(6))]
    entries.append(("my-pets/cat/broken.png", b"not an image"))
    archive = zip_with(tmp_path / "my-pets.zip", entries)

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    watcher = PageWatcher(page)
    page.goto(f"{server.url}/Data")
    wait_for_app(page)
    page.get_by_text("Import images").first.click()
    page.get_by_role("tab", name="Upload").click()
    panel = page.locator("[data-testid='stTabs'] [role='tabpanel']:visible").first
    panel.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(archive))
    panel.get_by_text("my-pets.zip").first.wait_for()
    name = panel.get_by_label("New dataset name")
    name.fill("my-pets")
    name.press("Enter")
    wait_for_app(page)
    button = panel.get_by_role("button", name="Import upload")
    page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=30_000)
    button.click()
    page.get_by_text("Imported 12 images into 'my-pets'").first.wait_for(timeout=120_000)
    wait_for_app(page)
    main = page.locator("[data-testid='stMain']")
    assert "1 file(s) skipped" in main.inner_text()
    assert "my-pets.zip:my-pets/cat/broken.png" in main.inner_text()
    page.get_by_text("Gallery", exact=True).first.wait_for()
    images = main.locator("[data-testid='stImage']")
    images.first.wait_for()
    assert images.count() == 12
    assert "cat · " in main.inner_text() and "dog · " in main.inner_text()
    screenshot(page, "data-import-zip")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
