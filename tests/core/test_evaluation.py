"""Evaluation, prediction and export of a real trained run, from Python and the CLI."""

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.inference.predictor import load_run_model, predict_one
from core.labels.quality import load_predictions
from tests.core.test_cli import run_cli


def test_evaluate_report_is_consistent_and_stored(trained_workspace):
    ws, run_id = trained_workspace
    rep = evaluate_run(ws, run_id, split="test")
    cm = np.array(rep["confusion_matrix"]["matrix"])
    assert rep["confusion_matrix"]["labels"] == [str(i) for i in range(10)]
    assert cm.sum() == rep["num_samples"] == 269
    assert rep["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert [r["support"] for r in rep["per_class"]] == cm.sum(axis=1).tolist()
    assert rep["accuracy"] > 0.5  # a real model, trained for a few epochs, learned something
    stored = stored_predictions(ws, run_id, "digits", "test")
    assert stored["probs"].shape == (269, 10)
    assert np.allclose(stored["probs"].sum(1), 1)
    # reused, not recomputed, while labels and checkpoint are unchanged
    assert evaluate_run(ws, run_id, split="test")["evaluated_at"] == rep["evaluated_at"]


def test_calibration_is_fitted_on_val_and_saved(trained_workspace):
    ws, run_id = trained_workspace
    rep = evaluate_run(ws, run_id, split="test")
    cal = json.loads((ws.runs_dir / run_id / "calibration.json").read_text())
    assert cal["fitted_on"] == "digits/val" and cal["temperature"] == rep["temperature"] > 0
    assert cal["ece_after"] <= cal["ece_before"] + 1e-9
    assert load_run_model(ws, run_id).temperature == cal["temperature"]


def test_finished_run_has_heldout_predictions_for_label_review(trained_workspace):
    ws, run_id = trained_workspace
    preds = load_predictions(ws.runs_dir / run_id / "predictions_val.npz", run_id)
    assert preds.source == "val" and preds.probs.shape[1] == 10
    with ws.db() as conn:
        val_ids = {r[0] for r in conn.execute(
            "SELECT i.id FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "WHERE d.name = 'digits' AND i.split = 'val'")}
    assert set(preds.image_ids.tolist()) == val_ids


def test_relabel_invalidates_the_stored_result(trained_workspace):
    ws, run_id = trained_workspace
    first = evaluate_run(ws, run_id, split="test")
    with ws.write() as conn:  # one label event, as the label editor would record it
        img = conn.execute("SELECT i.id, i.class_id, i.dataset_id FROM images i JOIN datasets d "
                           "ON d.id = i.dataset_id WHERE d.name='digits' AND split='test' "
                           "LIMIT 1").fetchone()
        other = conn.execute("SELECT id FROM classes WHERE dataset_id=? AND id != ? LIMIT 1",
                             (img[2], img[1])).fetchone()[0]
        action = conn.execute("INSERT INTO actions(dataset_id, kind, created_at) "
                              "VALUES (?, 'relabel', 0)", (img[2],)).lastrowid
        conn.execute("INSERT INTO label_events(action_id, image_id, old_class_id, new_class_id, "
                     "created_at) VALUES (?, ?, ?, ?, 0)", (action, img[0], img[1], other))
        conn.execute("UPDATE images SET class_id = ? WHERE id = ?", (other, img[0]))
    second = evaluate_run(ws, run_id, split="test")
    assert second["label_version"] > first["label_version"]
    assert second["evaluated_at"] != first["evaluated_at"]


def test_other_dataset_with_unknown_classes_is_a_clear_error(trained_workspace):
    ws, run_id = trained_workspace
    with pytest.raises(ImageLabError, match="classes the model was not trained on: circle"):
        evaluate_run(ws, run_id, dataset="shapes")


def test_evaluate_on_another_dataset_with_the_same_classes(trained_workspace):
    ws, run_id = trained_workspace
    rep = evaluate_run(ws, run_id, dataset="mnist-5k", split="test")
    assert rep["dataset"] == "mnist-5k" and rep["num_samples"] == 750


def test_cli_evaluate_json(trained_workspace):
    ws, run_id = trained_workspace
    out = run_cli(ws.root, "evaluate", run_id, "--split", "test", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"accuracy", "per_class", "confusion_matrix"}
    assert set(data["per_class"][0]) >= {"class", "precision", "recall", "f1", "support"}
    assert len(data["confusion_matrix"]["matrix"]) == len(data["confusion_matrix"]["labels"]) == 10
    bad = run_cli(ws.root, "evaluate", "no-such-run", "--json")
    assert bad.returncode == 2 and "unknown run" in json.loads(bad.stdout)["error"]


def _digit_png(ws, k=0):
    with ws.db() as conn:
        path = conn.execute("SELECT path FROM images WHERE original_name = ?",
                            (f"digits/{k:06d}.png",)).fetchone()[0]
    return ws.resolve(path)


def test_predict_cli_files_folders_zips_and_bad_files(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        (folder / f"d{k}.png").write_bytes(_digit_png(ws, k).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as zf:
        zf.write(_digit_png(ws, 4), "sub/d4.png")
        zf.writestr("../../evil.png", _digit_png(ws, 5).read_bytes())  # read in memory only
    out = run_cli(ws.root, "predict", run_id, str(folder), str(tmp_path / "more.zip"),
                  "--csv", str(tmp_path / "p.csv"), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["path"].split("/")[-1]: r for r in json.loads(out.stdout)["predictions"]}
    assert len(rows) == 6
    assert rows["broken.png"]["error"] and rows["broken.png"]["prediction"] == ""
    good = [r for r in rows.values() if not r["error"]]
    assert len(good) == 5 and all(r["prediction"] in [str(i) for i in range(10)] for r in good)
    assert all(abs(sum(v for k, v in r.items() if k.startswith("p_")) - 1) < 1e-4 for r in good)
    assert not (tmp_path.parent / "evil.png").exists()
    table = list(csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text())))
    assert len(table) == 6 and "p_9" in table[0]


def test_predict_one_threshold_answers_unknown(trained_workspace):
    ws, run_id = trained_workspace
    lm = load_run_model(ws, run_id)
    img = Image.open(_digit_png(ws, 0))
    sure = predict_one(lm, img, threshold=0.0)
    assert sure.confident and sure.label == sure.top[0][0]
    unsure = predict_one(lm, img, threshold=1.01)
    assert unsure.label == "unknown" and not unsure.confident


def test_predict_one_matches_the_batched_path(trained_workspace):
    """The single-image fast path (byte lookup, Python softmax) gives predict's numbers,
    for the trained grayscale model and for an RGB model, with and without a resize."""
    from pathlib import Path

    from core.inference.predictor import LoadedModel
    from core.models import create_model
    ws, run_id = trained_workspace
    lm = load_run_model(ws, run_id)
    lm.temperature = 1.7
    rgb = LoadedModel(create_model("compact", 5, 3, 16).eval(), "rgb", "compact", list("abcde"),
                      16, 3, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3], True, Path("."), temperature=0.8)
    rng = np.random.default_rng(0)
    images = [Image.open(_digit_png(ws, k)) for k in range(3)] + [
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        for shape in [(8, 8), (16, 16, 3), (23, 41, 3)]]
    for model in (lm, rgb):
        for img in images:
            fast = predict_one(model, img, top_k=3)
            slow = model.predict([img])[0]
            assert np.abs(np.array(fast.probabilities) - slow).max() < 1e-6
            assert [c for c, _ in fast.top] == [model.classes[i] for i in np.argsort(-slow)[:3]]


def test_planar_pixels_are_the_bands_in_order(tmp_path):
    """The per-band encoder read gives each band's pixels, band after band: small,
    odd-sized and large (over one 64 KiB block) L and RGB images; an RGBA image and a
    lazily opened file (which take the general path)."""
    from core.inference.predictor import planar_pixels
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in [(8, 8), (1, 1), (7, 13), (400, 300), (32, 32, 3), (5, 9, 3),
                            (300, 200, 3)]]
    Image.fromarray(arrays[5]).save(tmp_path / "odd.png")
    lazy = Image.open(tmp_path / "odd.png")
    assert lazy.mode == "RGB"
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    for img, array in [(Image.fromarray(a), a) for a in arrays + [rgba]] + [(lazy, arrays[5])]:
        expected = array if array.ndim == 2 else array.transpose(2, 0, 1)
        assert planar_pixels(img) == np.ascontiguousarray(expected).tobytes(), img.size


def test_export_cli_checks_parity_and_writes_bundle(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    out = run_cli(ws.root, "export", run_id, "--format", "pt2", "--out", str(tmp_path / "m.pt2"),
                  "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["max_abs_diff"] < 1e-3 and res["num_images_checked"] == 32
    with zipfile.ZipFile(res["bundle"]) as zf:
        assert json.loads(zf.read("classes.json")) == [str(i) for i in range(10)]
        pre = json.loads(zf.read("preprocessing.json"))
        assert pre["image_size"] == 8 and pre["channels"] == 1


def test_wrong_checkpoint_is_refused_clearly(trained_workspace):
    ws, run_id = trained_workspace
    (ws.runs_dir / run_id / "best.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ImageLabError, match="cannot be read"):
        load_run_model(ws, run_id)
    out = run_cli(ws.root, "predict", run_id, "x.png")
    assert out.returncode == 2 and "Traceback" not in out.stderr
