"""A new user imports a zip through the browser's file uploader and sees the gallery."""

import pytest

from tests.browser.conftest import (
    assert_no_exception_box,
    import_into_new_dataset,
    open_app,
    screenshot,
    wait_for_app,
)
from tests.core.data.corpus import png_bytes, zip_with

pytestmark = pytest.mark.browser


def upload_archive(page, archive, dataset: str) -> None:
    """On the Data page: upload ``archive`` in the Upload tab into a new dataset."""
    page.get_by_text("Import images").first.click()
    page.get_by_role("tab", name="Upload").click()
    panel = page.locator("[data-testid='stTabs'] [role='tabpanel']:visible").first
    panel.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(archive))
    panel.get_by_text(archive.name).first.wait_for()
    import_into_new_dataset(page, panel, "Import upload", dataset)


def test_upload_a_zip_and_see_the_gallery(browser, server, tmp_path):
    entries = [(f"my-pets/{c}/{i}.png", png_bytes(100 + k)) for k, (c, i) in
               enumerate((c, i) for c in ("cat", "dog") for i in range(6))]
    entries.append(("my-pets/cat/broken.png", b"not an image"))
    archive = zip_with(tmp_path / "my-pets.zip", entries)

    page, watcher = open_app(browser, f"{server.url}/Data")
    upload_archive(page, archive, "my-pets")
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


def test_import_a_large_local_folder_on_worker_processes(browser, server, tmp_path):
    """A folder of 400 images on this machine, by path: the server imports it on its
    worker processes (forkserver) and the gallery shows it."""
    src = tmp_path / "shelf"
    for i in range(400):
        folder = src / ("left" if i % 2 else "right")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(png_bytes(500 + i, size=(32, 32)))
    (src / "left" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    page, watcher = open_app(browser, f"{server.url}/Data")
    page.get_by_text("Import images").first.click()
    panel = page.locator("[data-testid='stTabs'] [role='tabpanel']:visible").first
    path = panel.get_by_label("Path")
    path.fill(str(src))
    path.press("Enter")
    wait_for_app(page)
    import_into_new_dataset(page, panel, "Import", "shelf")
    page.get_by_text("Imported 400 images into 'shelf'").first.wait_for(timeout=180_000)
    wait_for_app(page)
    main = page.locator("[data-testid='stMain']")
    assert "1 file(s) skipped" in main.inner_text() and "left/bad.png" in main.inner_text()
    main.locator("[data-testid='stImage']").first.wait_for()
    text = main.inner_text()
    assert "left · train" in text and "Classes\n\n2" in text
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
