"""A read-only summary of runs for overviews (the home page): plain dicts from the database.

Kept free of torch imports so the home page stays light; the Train page and ``runs list``
use ``core.training.runs``, which also detects dead processes.
"""

from __future__ import annotations

import json

from core.store.run_paths import summary_row
from core.store.workspace import Workspace


def count_runs(ws: Workspace) -> int:
    """How many runs the workspace holds, whatever their status or kind."""
    with ws.db() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def recent_runs(ws: Workspace, limit: int = 20) -> list[dict]:
    """The newest ``limit`` runs, newest first, as table rows for the Home page."""
    with ws.db() as conn:
        rows = conn.execute(
            "SELECT r.id, r.kind, r.status, r.name, r.config_json, r.metrics_json, r.created_at, "
            "d.name AS dataset FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
            "ORDER BY r.created_at DESC LIMIT ?", (limit,)).fetchall()
    return [summary_row(run_id=r["id"], dataset=r["dataset"], kind=r["kind"], status=r["status"],
                        config=json.loads(r["config_json"] or "{}"),
                        metrics=json.loads(r["metrics_json"] or "{}"), name=r["name"])
            for r in rows]
