"""Label quality on real data: the workspace's digits images, some labels flipped on
purpose, and out-of-fold probabilities from a real scikit-learn model (5-fold)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from core.data.ingest import DatasetWriter
from core.data.samples import import_sample
from core.labels import quality as label_quality
from core.labels import relabel
from core.labels.selection import ImageFilter, find_images, matching_labels

N_FLIP = 60


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """digits with N_FLIP labels flipped by a (simulated careless) user, and
    5-fold out-of-fold probabilities of a logistic regression on the pixels."""
    from core.store.workspace import open_workspace
    ws = open_workspace(tmp_path_factory.mktemp("quality") / "ws")
    import_sample(ws, "sample:digits")
    images = find_images(ws, "digits", limit=10_000)
    truth = {i.id: i.label for i in images}
    rng = np.random.default_rng(7)
    flip_ids = [int(x) for x in rng.choice([i.id for i in images], N_FLIP, replace=False)]
    changes = [(i, truth[i], str((int(truth[i]) + int(rng.integers(1, 10))) % 10)) for i in flip_ids]
    relabel.relabel(ws, "digits", changes, user="careless")
    current = matching_labels(ws, "digits", ImageFilter())
    ids = np.array(sorted(current), dtype=np.int64)
    paths = {i.id: i.path for i in images}
    X = np.stack([np.asarray(Image.open(ws.resolve(paths[i])).convert("L"), dtype=np.float32).ravel()
                  for i in ids]) / 255.0
    y = np.array([int(current[i]) for i in ids])
    probs = cross_val_predict(LogisticRegression(max_iter=2000), X, y, cv=5, method="predict_proba")
    return ws, ids, y, probs, set(flip_ids), truth


def test_ranking_finds_flipped_labels_and_suggests_the_truth(flipped):
    ws, ids, y, probs, flips, truth = flipped
    ranking = label_quality.rank_label_issues(ids, y, probs, [str(d) for d in range(10)])
    found = [s for s in ranking.suspects if s.image_id in flips]
    assert len(found) >= 0.7 * N_FLIP, len(found)                       # recall
    top = ranking.suspects[:N_FLIP]
    assert sum(s.image_id in flips for s in top) >= 0.6 * N_FLIP         # precision at N
    assert sum(s.suggested == truth[s.image_id] for s in found) >= 0.9 * len(found)
    confs = [s.self_confidence for s in ranking.suspects]
    assert confs == sorted(confs)
    assert all(s.suggested != s.given for s in ranking.suspects)
    # thresholds: the mean self-confidence per given class
    j = 3
    assert ranking.thresholds["3"] == pytest.approx(probs[y == j, j].mean())
    by_margin = label_quality.rank_label_issues(ids, y, probs, [str(d) for d in range(10)], order="margin")
    margins = [s.margin for s in by_margin.suspects]
    assert margins == sorted(margins) and {s.image_id for s in by_margin.suspects} == \
        {s.image_id for s in ranking.suspects}


def test_run_predictions_review_accept_keep_exclude(flipped, tmp_path):
    ws, ids, y, probs, flips, truth = flipped
    run_id = "quality-test-run"
    run_dir = ws.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / "predictions_val.npz", image_ids=ids, probs=probs.astype(np.float32),
             class_names=np.array([str(d) for d in range(10)]), source=np.array("val"))
    with ws.write() as conn:
        ds = conn.execute("SELECT id FROM datasets WHERE name = 'digits'").fetchone()[0]
        conn.execute("INSERT INTO runs(id, dataset_id, status, created_at) VALUES (?, ?, 'finished', 0)",
                     (run_id, ds))
    assert label_quality.prediction_runs(ws, "digits") == [(run_id, run_dir / "predictions_val.npz")]
    ranking = label_quality.rank_run(ws, "digits", run_id, run_dir / "predictions_val.npz")
    assert ranking.source == "val" and ranking.num_scored == len(ids)
    first, second, third = ranking.suspects[:3]
    label_quality.accept_suggestion(ws, "digits", first.image_id, first.suggested, expected=first.given, run_id=run_id)
    label_quality.keep_label(ws, "digits", second.image_id, run_id=run_id)
    label_quality.exclude_from_training(ws, "digits", third.image_id, run_id=run_id)
    again = label_quality.rank_run(ws, "digits", run_id, run_dir / "predictions_val.npz")
    left = {s.image_id for s in again.suspects}
    assert not left & {first.image_id, second.image_id, third.image_id}
    assert again.skipped["reviewed"] >= 2 and again.skipped["excluded"] == 1
    assert matching_labels(ws, "digits", ImageFilter())[first.image_id] == first.suggested
    # a stale review (the label changed since the ranking) is a conflict
    with pytest.raises(label_quality.ImageLabError, match="conflict"):
        label_quality.accept_suggestion(ws, "digits", first.image_id, "0", expected=first.given, run_id=run_id)
    # a file that does not say its predictions are held out is refused
    np.savez(run_dir / "predictions_val.npz", image_ids=ids, probs=probs,
             class_names=np.array([str(d) for d in range(10)]), source=np.array("train"))
    with pytest.raises(label_quality.ImageLabError, match="held-out"):
        label_quality.rank_run(ws, "digits", run_id, run_dir / "predictions_val.npz")


def test_identical_images_with_different_labels_are_flagged(workspace):
    img = np.zeros((16, 16), dtype=np.uint8)
    img[4:12, 4:12] = 255
    other = np.zeros((16, 16), dtype=np.uint8)
    other[:, :8] = 200
    with DatasetWriter(workspace, "dups", "test") as w:
        w.add_array(img, original_name="a.png", label="square")
        w.add_array(img, original_name="b.png", label="circle")
        w.add_array(other, original_name="c.png", label="circle")
        w.add_array(other, original_name="d.png", label="circle")
        w.commit()
    groups = label_quality.conflicting_duplicates(workspace, "dups")
    exact = [g for g in groups if g.exact]
    assert len(exact) == 1 and sorted(exact[0].labels) == ["circle", "square"]
    ids = [i.id for i in find_images(workspace, "dups")]
    relabel.relabel_image(workspace, "dups", ids[1], "square", expected="circle")
    assert [g for g in label_quality.conflicting_duplicates(workspace, "dups") if g.exact] == []
