"""The Explore page (AppTest): the state before any embeddings, the map with its colours,
"more like this" from an uploaded file, and the hooks on the other pages."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data.image_rows import image_rows
from core.embeddings.compute import compute_embeddings
from core.embeddings.jobs import embedding_job_status
from core.embeddings.projection import map_points
from dashboard.embedding_map import MAP_META, MAX_POINTS, map_caption, map_figure, shown_points
from dashboard.map_hover import hover_thumbnail
from dashboard.map_selection import clicked_ids, region_ids
from tests.conftest import private_workspace
from tests.dashboard.apptest import open_page
from tests.embedded import DATASET, EMBEDDER, build_embedded_master

EXPLORE = "pages/7_Explore.py"


@pytest.fixture(scope="module")
def _embedded_master(_samples_master, tmp_path_factory):
    return build_embedded_master(_samples_master, tmp_path_factory.mktemp("embedded") / "ws")


@pytest.fixture
def embedded_workspace(_embedded_master, tmp_path, monkeypatch):
    return private_workspace(_embedded_master, tmp_path, monkeypatch)


def traces(at) -> list[dict]:
    """The map's traces, with plotly's typed arrays (``{"dtype", "bdata"}``) decoded."""
    data = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    return [{k: _array(v) for k, v in t.items()} for t in data]


def _array(value):
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return out.reshape([int(n) for n in str(shape).split(",")]) if shape else out
    return value


def test_without_embeddings_the_page_says_so_and_offers_to_compute(sample_workspace):
    at = open_page(EXPLORE, check=True)
    assert at.title[0].value == "Explore"
    assert any("No map of digits" in i.value for i in at.info)
    assert at.button(key="explore_compute").label == "Compute embeddings"
    assert not at.get("plotly_chart")
    # the default embedder comes first, with its reason
    assert at.selectbox(key="explore_embedder_digits").value == EMBEDDER
    assert any("small centred images" in c.value for c in at.caption)


def test_the_map_is_coloured_by_label_split_and_flag(embedded_workspace):
    ws = embedded_workspace
    points = map_points(ws, DATASET, EMBEDDER)
    at = open_page(EXPLORE, check=True)
    data = traces(at)
    assert {t["type"] for t in data} == {"scattergl"}
    assert sum(len(t["x"]) for t in data) == len(points) == 1797
    by_label = {t["name"].split(" (")[0]: len(t["x"]) for t in data}
    labels = [r.label for r in image_rows(ws, DATASET, limit=None)]
    assert by_label == {c: labels.count(c) for c in set(labels)}
    ids = sorted(int(i[0]) for t in data for i in t["customdata"])
    assert ids == sorted(points["image_id"].tolist())
    assert any(f"map of {len(points):,} images" in c.value for c in at.caption)
    # the hover component finds this chart by its meta
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["meta"] == MAP_META
    at.radio(key="explore_colour_by").set_value("split").run()
    assert not at.exception
    names = {t["name"].split(" (")[0] for t in traces(at)}
    assert names <= {"train", "val", "test"} and "train" in names
    at.radio(key="explore_colour_by").set_value("quality flag").run()
    assert not at.exception and "none" in {t["name"].split(" (")[0] for t in traces(at)}
    at.radio(key="explore_colour_by").set_value("likely mislabelled").run()
    assert not at.exception and {t["name"].split(" (")[0] for t in traces(at)} == {"not scored"}


def test_more_like_this_from_an_uploaded_file(embedded_workspace):
    ws = embedded_workspace
    row = image_rows(ws, DATASET, limit=1)[0]
    at = open_page(EXPLORE, check=True)
    at.file_uploader(key="explore_upload").upload(row.original_name, row.file.read_bytes(),
                                                  "image/png")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    found = [c.value for c in at.caption if " · d=" in c.value]
    assert len(found) == 12
    assert found[0].startswith(f"#{row.id} ") and found[0].endswith("d=0.000")


def test_more_like_this_from_the_label_detail_and_pairs_on_the_data_page(embedded_workspace):
    ws = embedded_workspace
    first = image_rows(ws, DATASET, limit=1)[0]
    at = open_page("pages/2_Label.py", check=True)
    hook = f"detail_mlt_{first.id}"
    assert any(e.label == "More like this" for e in at.expander)
    assert not [c for c in at.caption if " · d=" in c.value]     # nothing searched while shut
    at.session_state[hook] = True                                 # the user opens it
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    found = [c.value for c in at.caption if " · d=" in c.value]
    assert len(found) == 12 and not any(f.startswith(f"#{first.id} ") for f in found)
    same = [f.split(" · ")[1] for f in found].count(first.label)
    assert same >= 9, found          # digits by pixels: the nearest are mostly the same digit
    data = open_page("pages/1_Data.py", check=True)
    assert any(e.label.startswith("Semantic near-duplicates by embedding distance")
               for e in data.expander)


def test_compute_embeddings_runs_the_background_job_and_the_map_follows(sample_workspace):
    at = open_page(EXPLORE, check=True)
    at.button(key="explore_compute").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("in the background" in i.value for i in at.info)
    status = embedding_job_status(sample_workspace, DATASET)
    assert status is not None and status["embedder"] == EMBEDDER
    deadline = time.time() + 600
    while status["state"] in ("starting", "running"):
        assert time.time() < deadline, status
        time.sleep(1)
        status = embedding_job_status(sample_workspace, DATASET)
    assert status["state"] == "done", status
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert sum(len(t["x"]) for t in traces(at)) == 1797
    assert any("UMAP map of 1,797 images" in c.value for c in at.caption)
    assert at.button(key="explore_compute").label.startswith("Update embeddings")


def test_more_like_this_on_evaluate_cell_images_and_demo_inputs(trained_workspace):
    ws, _ = trained_workspace
    compute_embeddings(ws, DATASET, EMBEDDER)
    at = open_page("pages/5_Evaluate.py", 180, check=True)
    at.selectbox(key="cm_pair").select_index(1).run()
    true, predicted = at.selectbox(key="cm_pair").value
    at.session_state[f"cell-{true}-{predicted}-mlt"] = True
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert len([c for c in at.caption if " · d=" in c.value]) == 12
    demo = open_page("pages/6_Demo.py", 180, check=True)
    demo.toggle(key="demo_ds_on").set_value(True).run()
    assert any(e.label == f"More like this in {DATASET}" for e in demo.expander)
    demo.session_state["demo_mlt_0"] = True
    demo.run()
    assert not demo.exception, [e.message for e in demo.exception]
    found = [c.value for c in demo.caption if " · d=" in c.value]
    assert len(found) == 12 and found[0].endswith("d=0.000")     # the input is a digits image


def test_a_region_selects_every_point_inside_it_even_those_not_drawn():
    rng = np.random.default_rng(0)
    n = 30_000
    df = pd.DataFrame({"image_id": np.arange(1, n + 1), "x": rng.normal(size=n),
                       "y": rng.normal(size=n), "method": "umap",
                       "colour": rng.choice(["a", "b", "c"], size=n)})
    shown = shown_points(df)
    assert len(shown) == MAX_POINTS
    assert f"Showing {MAX_POINTS:,} of {n:,} points" in map_caption(df, shown, running=False)
    inside = (df["x"].abs() < 0.5) & (df["y"].abs() < 0.5)
    want = sorted(df.loc[inside, "image_id"].tolist())
    box = {"box": [{"x": [-0.5, 0.5], "y": [0.5, -0.5]}], "lasso": [], "points": []}
    lasso = {"lasso": [{"x": [-0.5, 0.5, 0.5, -0.5], "y": [-0.5, -0.5, 0.5, 0.5]}]}
    assert region_ids(box, df) == want == region_ids(lasso, df)
    drawn_inside = shown["image_id"].isin(want).sum()
    assert len(want) > drawn_inside        # more than plotly itself could have reported
    assert region_ids({"points": [{"customdata": [7]}]}, df) is None
    assert clicked_ids({"points": [{"customdata": [7]}, {"customdata": [3]}]}) == [3, 7]
    # the legend counts every image of a category, the traces hold the drawn ones
    shown = shown.assign(name="x.png", label="a", split="train")
    fig = map_figure(shown, "t", counts=df["colour"].value_counts())
    for trace in fig.data:
        value = trace.name.split(" (")[0]
        assert trace.name == f"{value} ({int((df['colour'] == value).sum()):,})"
        assert len(trace.x) == int((shown["colour"] == value).sum()) < (df["colour"] == value).sum()


def test_colour_by_a_runs_predictions_and_by_likely_mislabelled(trained_workspace):
    ws, run_id = trained_workspace
    compute_embeddings(ws, DATASET, EMBEDDER)
    at = open_page(EXPLORE, check=True)
    assert at.selectbox(key="explore_embedder_digits").value == f"run:{run_id}"   # the default
    at.selectbox(key="explore_embedder_digits").set_value(EMBEDDER).run()
    at.radio(key="explore_colour_by").set_value("prediction").run()
    assert {t["name"].split(" (")[0] for t in traces(at)} == {"(no prediction)"}
    at.button(key="explore_colour_evaluate").click().run()      # evaluates the missing splits
    assert not at.exception, [e.message for e in at.exception]
    predicted = {t["name"].split(" (")[0]: len(t["x"]) for t in traces(at)}
    assert "(no prediction)" not in predicted and sum(predicted.values()) == 1797
    assert set(predicted) <= {str(d) for d in range(10)} and len(predicted) >= 8
    at.radio(key="explore_colour_by").set_value("likely mislabelled").run()
    names = {t["name"].split(" (")[0] for t in traces(at)}
    assert "looks right" in names and "not scored" in names      # val is scored, train is not
    assert any(f"run {run_id}'s held-out" in c.value for c in at.caption)


def test_the_hover_thumbnail_is_the_images_own_thumbnail_sized_to_draw(embedded_workspace):
    ws = embedded_workspace
    row = image_rows(ws, DATASET, limit=1)[0]             # an 8x8 digit: a 96 px JPEG thumbnail
    tip = hover_thumbnail(row)
    mime, data = tip["src"].split(",", 1)
    assert mime == "data:image/jpeg;base64" and tip["id"] == row.id
    assert base64.b64decode(data) == row.thumb.read_bytes()
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (96, 96)
    assert (tip["width"], tip["height"], tip["pixelated"]) == (96, 96, True)
    assert tip["caption"] == f"#{row.id} {row.original_name}"

    row.thumb.unlink()                                    # a thumbnail gone since it was read
    assert hover_thumbnail(row) is None
    again = image_rows(ws, DATASET, limit=1)[0]           # read now: the stored 8x8 original
    tip = hover_thumbnail(again)
    assert again.thumb == again.file and tip["src"].startswith("data:image/png;base64,")
    assert base64.b64decode(tip["src"].split(",", 1)[1]) == again.file.read_bytes()
