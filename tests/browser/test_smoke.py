"""The dashboard in a real browser: home page, and a page opened by direct URL."""

import pytest

from tests.browser.conftest import assert_no_exception_box, open_app, screenshot

pytestmark = pytest.mark.browser


def test_home_lists_the_samples(browser, server):
    page, watcher = open_app(browser, server.url, height=1000)
    page.get_by_text("Datasets", exact=True).first.wait_for()
    table = page.locator("[data-testid='stTable']").first
    table.wait_for()
    text = table.inner_text()
    for name, count in (("digits", "1797"), ("mnist-5k", "5000"), ("shapes", "600")):
        assert name in text and count in text, (name, text)
    screenshot(page, "smoke-home")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()


@pytest.mark.parametrize("path,title", [("Data", "Data"), ("Label", "Label"), ("Train", "Train"),
                                        ("Fine-tune", "Fine-tune"), ("Evaluate", "Evaluate"),
                                        ("Demo", "Demo")])
def test_page_opens_by_direct_url_on_a_fresh_server(browser, server, path, title):
    page, watcher = open_app(browser, f"{server.url}/{path}", height=1000)
    heading = page.locator("h1").first
    heading.wait_for()
    assert heading.inner_text().strip() == title
    if path == "Data":
        # The page ran (not the home script): its dataset picker shows the samples.
        page.get_by_text("Images per class and split").first.wait_for()
        main = page.locator("[data-testid='stMain']").inner_text()
        assert "1,797" in main  # the first dataset, digits, is described
        assert page.locator("[data-testid='stMain'] [data-testid='stImage']").count() == 32
    screenshot(page, f"smoke-direct-{path}")
    assert_no_exception_box(page)
    assert watcher.errors == [], watcher.errors
    page.close()
