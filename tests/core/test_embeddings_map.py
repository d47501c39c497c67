"""The 2-D map: PCA at once (UMAP: test_embeddings_jobs.py); decimation for display keeps every label; a lasso
selects every point inside it, drawn or not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import PIXELS
from core.embeddings.projection import PCA_FILE, display_points, map_points, points_in_polygon


def _with_labels(ws, dataset, df):
    with ws.db() as conn:
        labels = dict(conn.execute("SELECT i.id, c.name FROM images i JOIN classes c "
                                   "ON c.id = i.class_id"))
    return df.assign(label=[labels.get(int(i)) for i in df["image_id"]])


def test_map_is_pca_at_once(sample_workspace):
    ws = sample_workspace
    es = compute_embeddings(ws, "digits", PIXELS)
    pca = map_points(ws, "digits")
    assert list(pca.columns) == ["image_id", "x", "y", "method"]
    assert (pca["method"] == "pca").all() and len(pca) == len(es)
    assert pca["image_id"].tolist() == es.image_ids.tolist()
    assert np.isfinite(pca[["x", "y"]].to_numpy()).all() and pca["x"].std() > 0
    assert es.derived(PCA_FILE).is_file()
    assert map_points(ws, "digits").equals(pca)          # stored, the same map again
    df = _with_labels(ws, "digits", pca)
    assert class_neighbourhood(df) >= 0.5      # even two linear axes separate digits a bit


def class_neighbourhood(df) -> float:
    """How often the majority label of a point's 5 nearest points on the map is its own
    (first 300 points)."""
    xy, lab = df[["x", "y"]].to_numpy(), df["label"].to_numpy()
    d = ((xy[:300, None, :] - xy[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d, axis=1)[:, 1:6]
    return float(np.mean([max(set(lab[n]), key=list(lab[n]).count) == lab[i]
                          for i, n in enumerate(nearest)]))


def test_decimation_keeps_every_label_and_is_stable(sample_workspace):
    ws = sample_workspace
    compute_embeddings(ws, "mnist-5k", PIXELS)
    df = _with_labels(ws, "mnist-5k", map_points(ws, "mnist-5k"))
    df.loc[df.index[[10, 2000, 4000]], "label"] = "rare"     # a class of three images
    shown = display_points(df, 400)
    assert len(shown) <= 400 and set(shown["label"]) == set(df["label"])
    assert shown["image_id"].isin(df["image_id"]).all() and shown["image_id"].is_unique
    assert shown.equals(display_points(df, 400))             # deterministic
    assert display_points(df, len(df)) is df                 # nothing to decimate
    tiny = display_points(df, 5)                             # fewer slots than labels
    assert set(tiny["label"]) == set(df["label"])
    # every occupied part of the map keeps points: compare 8×8 cells
    def cells(frame):
        gx = np.floor((frame["x"] - df["x"].min()) / (np.ptp(df["x"]) / 8 + 1e-12))
        gy = np.floor((frame["y"] - df["y"].min()) / (np.ptp(df["y"]) / 8 + 1e-12))
        return set(zip(gx.clip(0, 7), gy.clip(0, 7)))
    assert cells(display_points(df, 1500)) == cells(df)


def test_lasso_selects_all_points_inside_not_only_drawn_ones(sample_workspace):
    ws = sample_workspace
    compute_embeddings(ws, "mnist-5k", PIXELS)
    df = map_points(ws, "mnist-5k")
    x0, x1 = np.percentile(df["x"], [20, 70])
    y0, y1 = np.percentile(df["y"], [10, 60])
    box = points_in_polygon(df, [x0, x1, x1, x0], [y0, y0, y1, y1])
    inside = df[(df["x"] > x0) & (df["x"] < x1) & (df["y"] > y0) & (df["y"] < y1)]
    assert sorted(box.tolist()) == sorted(inside["image_id"].tolist())
    assert len(box) > len(display_points(df, 300))     # more than could have been drawn
    tri = points_in_polygon(df, [x0, x1, x0], [y0, y0, y1])        # a triangle
    u = (df["x"] - x0) / (x1 - x0)
    v = (df["y"] - y0) / (y1 - y0)
    expect = df[(u > 0) & (v > 0) & (u + v < 1)]["image_id"]
    assert set(tri.tolist()) == set(expect.tolist()) and 0 < len(tri) < len(box)
    assert len(points_in_polygon(df, [x0, x1], [y0, y1])) == 0      # not a polygon
    empty = pd.DataFrame({"image_id": [], "x": [], "y": []})
    assert len(points_in_polygon(empty, [0, 1, 1], [0, 0, 1])) == 0
