"""A read-only summary of runs for overviews (the home page, ``runs list``)."""

from __future__ import annotations

import json

from core.store.workspace import Workspace


def recent_runs(ws: Workspace, limit: int = 20) -> list[dict]:
    with ws.db() as conn:
        rows = conn.execute(
            "SELECT r.id, r.kind, r.status, r.name, r.metrics_json, r.created_at, d.name AS dataset "
            "FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
            "ORDER BY r.created_at DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for r in rows:
        metrics = json.loads(r["metrics_json"] or "{}")
        out.append({"run": r["id"], "name": r["name"], "dataset": r["dataset"], "kind": r["kind"],
                    "status": r["status"], "val_accuracy": metrics.get("val_accuracy")})
    return out
