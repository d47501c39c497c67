"""Monitoring of a prediction service, read from its prediction log (plain data, no pandas).

The service appends one JSON line per ``/predict`` request to
``runs/<run_id>/service/predictions.jsonl`` (see ``core.inference.prediction_log``).
``monitoring_summary`` turns a time window of it into figures for the Demo page: request
rate, latency percentiles, the predicted-class distribution over time next to the run's
training distribution, the share of "unknown" answers and the errors. The service rotates
the log at a size limit (``predictions.jsonl.1``, ``.2``...), and each worker process of
``serve --workers N`` writes its own file (``predictions-<slot>.jsonl``);
``read_prediction_log`` reads every worker's files, rotated ones included, and merges them
by time, so a window that spans a rotation or several workers stays whole.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from core.errors import NotFoundError
from core.store.run_paths import checked_run_id, run_paths
from core.store.workspace import Workspace


def prediction_log_path(ws: Workspace, run_id: str) -> Path:
    """Where the prediction service appends one JSON line per request for this run."""
    return run_paths(ws, run_id).prediction_log


def prediction_log_files(ws: Workspace, run_id: str) -> list[Path]:
    """The run's prediction log files that exist, by worker slot (``predictions.jsonl``, then
    ``predictions-1.jsonl``, ...; see ``core.inference.prediction_log``), each slot's oldest
    first: its rotated files (``.N`` ... ``.1``) and then the live one."""
    paths = run_paths(ws, run_id)
    base = paths.prediction_log
    pattern = re.compile(rf"^{re.escape(base.stem)}(?:-([1-9]\d*))?{re.escape(base.suffix)}"
                         r"(?:\.([1-9]\d*))?$")
    found = []
    for p in paths.service_dir.glob(base.stem + "*"):
        m = pattern.match(p.name)
        if m and p.is_file():
            slot = int(m.group(1)) if m.group(1) else 0
            age = int(m.group(2)) if m.group(2) else 0     # 0 = live; higher = older
            found.append((slot, -age, p))
    return [p for _, _, p in sorted(found)]


def read_prediction_log(ws: Workspace, run_id: str, since: float | None = None) -> list[dict]:
    """The log's records (dicts, oldest first) with ``ts >= since``, rotated files included,
    every worker's files merged by time.

    A torn or unreadable line (a server killed mid-write) is skipped, not fatal. Raises
    ``NotFoundError`` for a run that is not in the runs table (or has no folder) and
    ``ImageLabError`` for a malformed run id.
    """
    if not run_paths(ws, checked_run_id(run_id, ws)).folder.is_dir():
        raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    records = []
    for path in prediction_log_files(ws, run_id):
        try:
            fh = open(path, encoding="utf-8", errors="replace")
        except FileNotFoundError:              # rotated away while listing
            continue
        with fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    ts = float(rec["ts"])
                except (ValueError, KeyError, TypeError):
                    continue
                if since is None or ts >= since:
                    records.append(rec)
    records.sort(key=lambda r: float(r["ts"]))      # stable: one file's order is kept on ties
    return records


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0–100), like numpy's default; None if empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_classes(ws: Workspace, run_id: str) -> list[str]:
    """The run's class names from its ``classes.json``; empty when missing or unreadable."""
    try:
        return list(json.loads(run_paths(ws, run_id).classes.read_text()))
    except (OSError, ValueError):
        return []


def training_distribution(ws: Workspace, run_id: str) -> dict[str, int]:
    """Images per class in the run's dataset: split 'train', labelled, not excluded (now)."""
    with ws.db() as conn:
        rows = conn.execute(
            "SELECT c.name AS name, COUNT(i.id) AS n FROM runs r "
            "JOIN classes c ON c.dataset_id = r.dataset_id AND c.deleted_at IS NULL "
            "LEFT JOIN images i ON i.class_id = c.id AND i.split = 'train' AND i.excluded = 0 "
            "WHERE r.id = ? GROUP BY c.id ORDER BY c.position, c.id", (run_id,)).fetchall()
    return {r["name"]: int(r["n"]) for r in rows}


def monitoring_summary(ws: Workspace, run_id: str, window_s: float = 3600.0,
                       bucket_s: float | None = None, now: float | None = None) -> dict:
    """Figures over the last ``window_s`` seconds of the run's prediction log.

    Returns a dict of plain values:

    - ``run_id``, ``window_s``, ``since``, ``now`` (Unix seconds), ``bucket_s``;
    - ``requests``: every ``/predict`` request in the window; ``predictions``: those answered
      (status 200); ``errors``: those refused (4xx/5xx); ``errors_by_status``: {"400": n, ...};
    - ``request_rate_per_min``: ``requests`` / window minutes;
    - ``latency_ms``: {"p50", "p90", "p99", "mean"} of answered requests (None without any);
    - ``unknown``: answers below the threshold; ``unknown_share``: ``unknown / predictions``
      (None without predictions);
    - ``classes``: the run's classes, in order;
    - ``predicted_counts``: {class: n} of the model's top class over answered requests
      (also when the answer was "unknown"), every class present;
    - ``predicted_share`` and ``training_share``: the same as fractions, next to
      ``training_counts`` (the run's dataset, split 'train', labelled, not excluded);
    - ``over_time``: one entry per bucket of ``bucket_s`` seconds (default: a 60th of the
      window), oldest first: {"start", "requests", "errors", "unknown", "per_min",
      "counts": {class: n}}.
    """
    now = time.time() if now is None else now
    since = now - window_s
    bucket_s = bucket_s or max(window_s / 60, 1.0)
    records = [r for r in read_prediction_log(ws, run_id, since=since) if r["ts"] <= now]
    classes = run_classes(ws, run_id)
    ok = [r for r in records if r.get("status") == 200]
    errors = [r for r in records if (r.get("status") or 500) >= 400]
    latencies = [float(r["latency_ms"]) for r in ok if r.get("latency_ms") is not None]
    unknown = sum(1 for r in ok if r.get("unknown"))
    counts = {c: 0 for c in classes}
    for r in ok:
        counts[r.get("top_class")] = counts.get(r.get("top_class"), 0) + 1
    train_counts = training_distribution(ws, run_id)
    n_train = sum(train_counts.values())

    n_buckets = max(1, math.ceil(window_s / bucket_s))
    over_time = [{"start": since + k * bucket_s, "requests": 0, "errors": 0, "unknown": 0,
                  "per_min": 0.0, "counts": {c: 0 for c in classes}} for k in range(n_buckets)]
    for r in records:
        b = over_time[min(n_buckets - 1, int((r["ts"] - since) // bucket_s))]
        b["requests"] += 1
        if r.get("status") == 200:
            b["counts"][r.get("top_class")] = b["counts"].get(r.get("top_class"), 0) + 1
            b["unknown"] += bool(r.get("unknown"))
        else:
            b["errors"] += 1
    for b in over_time:
        b["per_min"] = b["requests"] * 60 / bucket_s

    by_status: dict[str, int] = {}
    for r in errors:
        by_status[str(r.get("status"))] = by_status.get(str(r.get("status")), 0) + 1
    return {
        "run_id": run_id, "window_s": window_s, "since": since, "now": now, "bucket_s": bucket_s,
        "requests": len(records), "predictions": len(ok), "errors": len(errors),
        "errors_by_status": by_status,
        "request_rate_per_min": len(records) * 60 / window_s,
        "latency_ms": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                       "p99": percentile(latencies, 99),
                       "mean": sum(latencies) / len(latencies) if latencies else None},
        "unknown": unknown, "unknown_share": unknown / len(ok) if ok else None,
        "classes": classes,
        "predicted_counts": counts,
        "predicted_share": {c: n / len(ok) for c, n in counts.items()} if ok else {},
        "training_counts": train_counts,
        "training_share": {c: n / n_train for c, n in train_counts.items()} if n_train else {},
        "over_time": over_time,
    }
