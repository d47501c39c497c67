"""Explore in a real browser: open the map, lasso a group of points with plotly's own lasso
(switched on in the modebar, dragged with the mouse), relabel the whole group in bulk, undo
it, and see "more like this" for one of its images."""

from __future__ import annotations

import math
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.data.image_rows import rows_by_id
from core.embeddings.projection import map_points, points_in_polygon
from core.store.workspace import open_workspace
from tests.browser.conftest import ARTIFACTS, journey_page, served_copy, wait_for_app
from tests.browser.test_labels import choose
from tests.embedded import DATASET, EMBEDDER, build_embedded_master

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def _explore_master(_samples_master, tmp_path_factory):
    return build_embedded_master(_samples_master, tmp_path_factory.mktemp("explore") / "ws")


@pytest.fixture
def explore_server(_explore_master, tmp_path):
    yield from served_copy(_explore_master, tmp_path)


def labels_of(home, ids) -> dict[int, str | None]:
    with sqlite3.connect(home / "imagelab.db") as conn:
        marks = ",".join("?" * len(ids))
        return {int(i): name for i, name in conn.execute(
            f"SELECT i.id, c.name FROM images i LEFT JOIN classes c ON c.id = i.class_id "
            f"WHERE i.id IN ({marks})", [int(i) for i in ids])}


def ring(cx: float, cy: float, r: float, n: int = 16) -> tuple[list[float], list[float]]:
    """A polygon of ``n`` corners round (cx, cy), in data units."""
    angles = [2 * math.pi * k / n for k in range(n)]
    return [cx + r * math.cos(a) for a in angles], [cy + r * math.sin(a) for a in angles]


def to_screen(page, xs, ys) -> list[tuple[float, float]]:
    """Page pixels of data points on the map (plotly's own axis conversion)."""
    return page.evaluate(
        """([xs, ys]) => {
            const gd = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot");
            const box = gd.getBoundingClientRect(), L = gd._fullLayout;
            return xs.map((x, k) => [box.left + L.xaxis._offset + L.xaxis.l2p(x),
                                     box.top + L.yaxis._offset + L.yaxis.l2p(ys[k])]);
        }""", [list(map(float, xs)), list(map(float, ys))])


def lonely_points(page, points) -> list[int]:
    """Row positions of the map's points, loneliest (farthest from its nearest neighbour on
    screen) first."""
    xy = np.asarray(to_screen(page, points["x"], points["y"]))
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    return [int(k) for k in np.argsort(-d.min(axis=1))]


def hover_point(page, points, k: int) -> int:
    """Move the mouse onto the point in row ``k``; its image id."""
    xy = np.asarray(to_screen(page, points["x"].iloc[[k]], points["y"].iloc[[k]]))[0]
    page.mouse.move(xy[0] - 30, xy[1] - 30)
    page.mouse.move(float(xy[0]), float(xy[1]), steps=5)
    return int(points["image_id"].iloc[k])


def test_lasso_a_group_relabel_it_undo_and_more_like_this(browser, explore_server, tmp_path):
    ws = open_workspace(explore_server.home)
    points = map_points(ws, DATASET, EMBEDDER)
    page, watcher, main, shot = journey_page(browser, ARTIFACTS / "explore")
    page.goto(f"{explore_server.url}/Explore")
    page.wait_for_selector("[data-testid='stPlotlyChart'] .js-plotly-plot", timeout=90_000)
    wait_for_app(page)
    assert page.locator("h1").first.inner_text().strip() == "Explore"
    main.get_by_text(f"map of {len(points):,} images").first.wait_for()
    shot("map")

    # Hover an image that stands apart: its thumbnail shows beside the mouse.
    lonely = lonely_points(page, points)
    hovered = hover_point(page, points, lonely[0])
    tip = page.locator("[data-testid='imagelab-map-hover'] img")
    tip.wait_for(timeout=30_000)
    assert int(tip.get_attribute("data-image-id")) == hovered
    assert tip.get_attribute("src").startswith("data:image/")
    assert tip.evaluate("img => img.complete && img.naturalWidth > 0")
    shot("hover-thumbnail")
    page.mouse.move(5, 5)
    page.locator("[data-testid='imagelab-map-hover']").wait_for(state="hidden")
    # An image whose files are gone (one not hovered yet, so nothing of it is kept in the
    # page): the hover says so instead of waiting for a picture.
    gone_id = int(points["image_id"].iloc[lonely[1]])
    gone = rows_by_id(ws, [gone_id])[gone_id]
    gone.thumb.unlink()
    gone.file.unlink(missing_ok=True)
    assert hover_point(page, points, lonely[1]) == gone_id != hovered
    page.locator("[data-testid='imagelab-map-hover']").get_by_text(
        f"#{gone_id}: no picture").wait_for(timeout=30_000)
    page.mouse.move(5, 5)

    # A ring round the middle of the images labelled "0": what the lasso should take.
    zeros = points.merge(_labels_frame(explore_server.home, points), on="image_id")
    zeros = zeros[zeros["label"] == "0"]
    cx, cy = float(zeros["x"].median()), float(zeros["y"].median())
    spread = float(np.hypot(points["x"] - cx, points["y"] - cy).std())
    xs, ys = ring(cx, cy, 0.25 * spread)
    inner = set(points_in_polygon(points, *ring(cx, cy, 0.22 * spread)))
    outer = set(points_in_polygon(points, *ring(cx, cy, 0.28 * spread)))
    assert len(inner) >= 5

    chart = page.locator("[data-testid='stPlotlyChart']")
    chart.hover()
    chart.locator(".modebar-btn[data-val='lasso']").first.click()
    corners = to_screen(page, xs + xs[:1], ys + ys[:1])
    page.mouse.move(*corners[0])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
    selected_text = main.get_by_text("images selected")
    selected_text.wait_for(timeout=60_000)
    wait_for_app(page)
    count = int(selected_text.inner_text().split()[0].replace(",", ""))
    assert len(inner) <= count <= len(outer), (len(inner), count, len(outer))
    shot("lasso-selection")

    # Relabel the whole selection in bulk: one action, every image inside the lasso.
    before = labels_of(explore_server.home, outer)
    choose(page, "Set label to", "9")
    main.get_by_role("button", name=f"Set label of {count:,} images").click()
    main.get_by_text(f"Saved: {count:,} images set to 9").wait_for(timeout=60_000)
    after = labels_of(explore_server.home, outer)
    changed = {i for i in outer if after[i] != before[i]}
    assert all(after[i] == "9" for i in inner)
    assert {i for i in inner if before[i] != "9"} <= changed
    assert all(after[i] == "9" for i in changed) and len(changed) <= count
    shot("relabelled")

    # Undo it: every label is back.
    main.get_by_role("button", name="Undo #").click()
    main.get_by_text("Undone #").wait_for(timeout=60_000)
    assert labels_of(explore_server.home, outer) == before
    wait_for_app(page)

    # More like this, for the first image of the selection: 12 neighbours with distances.
    page.get_by_role("tab", name="An image on the map").click()
    main.get_by_text("most like #").first.wait_for(timeout=60_000)
    assert main.get_by_text(" · d=").count() >= 12
    shot("more-like-this")
    assert not watcher.errors, watcher.errors


def _labels_frame(home, points):
    labels = labels_of(home, points["image_id"].tolist())
    return pd.DataFrame({"image_id": list(labels), "label": list(labels.values())})


def test_compute_embeddings_shows_live_progress_and_the_maps_follow(browser, server, tmp_path):
    """No reloads and no clicks after "Compute embeddings": the progress bar redraws by
    itself, the instant PCA map appears while UMAP runs, and the UMAP map replaces it."""
    page, watcher, main, shot = journey_page(browser, tmp_path / "shots")
    page.goto(f"{server.url}/Explore")
    wait_for_app(page)
    main.get_by_text("No map of digits").wait_for(timeout=60_000)
    main.get_by_role("button", name="Compute embeddings").click()
    bar = main.locator("[data-testid='stProgress']")
    bar.first.wait_for(timeout=60_000)
    seen, pca_seen = set(), False
    umap = main.get_by_text("UMAP map of 1,797 images")
    pca = main.get_by_text("This is the instant PCA view")
    deadline = time.time() + 600
    while not umap.count():
        assert time.time() < deadline, seen
        if bar.count():
            try:
                seen.add(bar.first.inner_text(timeout=1_000).strip())
            except PlaywrightTimeout:
                pass
        if not pca_seen and pca.count():
            pca_seen = True
            page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for(timeout=30_000)
            shot("pca-while-umap-runs")
        time.sleep(0.3)
    wait_for_app(page)
    shot("umap")
    assert pca_seen, seen
    assert any("of 1,797" in t for t in seen), seen
    assert not bar.count()
    assert page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").count() == 1
    assert not watcher.errors, watcher.errors
