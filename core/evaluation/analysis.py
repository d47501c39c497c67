"""Error analysis on stored evaluations: confusion cells, top losses, confused pairs,
and run comparison. Plain data in, plain data out, for the Evaluate page and tests.

The images behind these rows (their current label, file and thumbnail) are read
with ``core.data.image_rows.rows_by_id``, the one image-row reader."""

from __future__ import annotations

import json

import numpy as np

from core.labels.versions import version_numbers
from core.store.workspace import Workspace


def most_confused_pairs(matrix: list[list[int]], labels: list[str], n: int = 20) -> list[dict]:
    """Off-diagonal cells by count, largest first: {true, predicted, count, share of the row}."""
    cm = np.asarray(matrix)
    rows = cm.sum(axis=1)
    pairs = [{"true": labels[i], "predicted": labels[j], "count": int(cm[i, j]),
              "share": float(cm[i, j] / rows[i]) if rows[i] else 0.0}
             for i in range(len(labels)) for j in range(len(labels)) if i != j and cm[i, j] > 0]
    return sorted(pairs, key=lambda p: (-p["count"], -p["share"]))[:n]


def cell_images(preds: dict, labels: list[str], true: str, predicted: str,
                limit: int = 48) -> list[dict]:
    """Images whose true class is ``true`` and prediction ``predicted``, most confident first."""
    t, p = labels.index(true), labels.index(predicted)
    probs = preds["probs"]
    pred = probs.argmax(axis=1)
    idx = np.where((preds["y_true"] == t) & (pred == p))[0]
    idx = idx[np.argsort(-probs[idx, p])][:limit]
    return [_row(preds, labels, int(i)) for i in idx]


def top_losses(preds: dict, labels: list[str], n: int = 16, only_wrong: bool = False) -> list[dict]:
    """The ``n`` highest-loss images (only misclassified ones if ``only_wrong``), highest first."""
    loss = preds["loss"]
    idx = np.argsort(-loss)
    if only_wrong:
        idx = [i for i in idx if preds["probs"][i].argmax() != preds["y_true"][i]]
    return [_row(preds, labels, int(i)) for i in list(idx)[:n]]


def _row(preds: dict, labels: list[str], i: int) -> dict:
    probs = preds["probs"][i]
    y = int(preds["y_true"][i])
    p = int(probs.argmax())
    return {"image_id": int(preds["image_ids"][i]), "true": labels[y], "predicted": labels[p],
            "p_predicted": float(probs[p]), "p_true": float(probs[y]),
            "loss": float(preds["loss"][i])}


# Run metrics named by the checkpoint they belong to, in the comparison table.
CHECKPOINT_METRICS = {"best_val_accuracy": "val_accuracy (best.pt)",
                      "best_epoch": "epoch of best.pt",
                      "val_accuracy": "val_accuracy (last.pt, final epoch)"}


def compare_runs(ws: Workspace, run_ids: list[str]) -> dict:
    """Hyperparameters and final metrics side by side, each metric named by its checkpoint
    and the label version numbered (``v12``); ``differs`` lists the keys that vary."""
    rows = []
    with ws.db() as conn:
        for run_id in run_ids:
            r = conn.execute("SELECT r.id, r.name, r.status, r.config_json, r.metrics_json, "
                             "r.label_version, d.name AS dataset FROM runs r LEFT JOIN datasets d "
                             "ON d.id = r.dataset_id WHERE r.id = ?", (run_id,)).fetchone()
            if r is None:
                continue
            cfg = json.loads(r["config_json"] or "{}")
            metrics = json.loads(r["metrics_json"] or "{}")
            row = {"run": r["id"], "name": r["name"], "dataset": r["dataset"], "status": r["status"],
                   "label_version": r["label_version"]}
            row.update({k: v for k, v in cfg.items() if k != "dataset"})
            row.update({f"metric:{CHECKPOINT_METRICS.get(k, k)}": v for k, v in metrics.items()
                        if isinstance(v, (int, float))})
            rows.append(row)
    for row in rows:                     # the label version as people read it: v12
        v = row.get("label_version")
        if row["dataset"] and isinstance(v, int):
            row["label_version"] = f"v{version_numbers(ws, row['dataset'], [v])[v]}"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    differs = [k for k in keys if k != "run" and len({json.dumps(row.get(k), default=str)
                                                       for row in rows}) > 1]
    return {"rows": rows, "columns": keys, "differs": differs}
