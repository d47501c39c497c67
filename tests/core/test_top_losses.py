"""``core.evaluation.analysis.top_losses`` and ``cell_images`` on a real run's stored test predictions."""

from __future__ import annotations

import numpy as np

from core.evaluation.analysis import cell_images, top_losses
from core.evaluation.evaluate import evaluate_run, stored_predictions


def test_top_losses_worst_first_and_only_wrong(trained_workspace):
    ws, run_id = trained_workspace
    evaluate_run(ws, run_id, "digits", "test")
    preds = stored_predictions(ws, run_id, "digits", "test")
    labels = [str(c) for c in preds["class_names"]]
    rows = top_losses(preds, labels, n=20)
    assert len(rows) == 20
    losses = [r["loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert losses[0] == float(preds["loss"].max())
    assert min(losses) >= np.sort(preds["loss"])[-20]
    by_id = {int(i): k for k, i in enumerate(preds["image_ids"])}
    for r in rows:
        k = by_id[r["image_id"]]
        assert r["true"] == labels[preds["y_true"][k]]
        assert r["predicted"] == labels[preds["probs"][k].argmax()]
        assert r["p_predicted"] == float(preds["probs"][k].max())
        assert r["p_true"] == float(preds["probs"][k, preds["y_true"][k]])
    wrong = top_losses(preds, labels, n=len(labels) * 1000, only_wrong=True)
    n_wrong = int((preds["probs"].argmax(axis=1) != preds["y_true"]).sum())
    assert len(wrong) == n_wrong
    assert all(r["true"] != r["predicted"] for r in wrong)
    assert [r["loss"] for r in wrong] == sorted((r["loss"] for r in wrong), reverse=True)
    # every wrong image is in the cell of its (true, predicted) pair
    for r in wrong[:5]:
        assert r["image_id"] in {c["image_id"] for c in cell_images(preds, labels, r["true"],
                                                                     r["predicted"])}
