"""Run records read back from disk: metrics.jsonl with torn lines, and the run count."""

from __future__ import annotations

import json

from core.runs_overview import count_runs, recent_runs
from core.training.config import TrainConfig
from core.training.runs import create_run, read_metrics


def test_read_metrics_counts_the_lines_it_cannot_parse(tmp_path):
    good = [{"type": "step", "global_step": 1, "loss": 2.0},
            {"type": "epoch", "epoch": 0, "val_accuracy": 0.5},
            {"type": "step", "global_step": 2, "loss": 1.5}]
    lines = [json.dumps(good[0]),
             json.dumps(good[1])[:17],          # torn by a killed writer, mid-record
             json.dumps(good[1]),
             "",                                # a blank line is no record and no damage
             "[1, 2]",                          # valid JSON, but not a record
             json.dumps(good[2]),
             '{"type": "step", "glo']           # torn last line, no newline
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    records = read_metrics(tmp_path)
    assert list(records) == good
    assert records.skipped == 3


def test_read_metrics_of_a_clean_or_missing_file(tmp_path):
    assert read_metrics(tmp_path) == [] and read_metrics(tmp_path).skipped == 0
    rows = [{"type": "epoch", "epoch": e} for e in range(3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = read_metrics(tmp_path)
    assert records == rows and records.skipped == 0


def test_read_metrics_survives_bytes_that_are_not_utf8(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"type": "epoch", "epoch": 0}\n\xff\xfe{"x\n')
    records = read_metrics(tmp_path)
    assert records == [{"type": "epoch", "epoch": 0}] and records.skipped == 1


def test_count_runs_counts_every_run_not_only_the_recent_ones(sample_workspace):
    ws = sample_workspace
    assert count_runs(ws) == 0
    made = [create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1)).id
            for _ in range(13)]
    assert count_runs(ws) == 13
    assert len(recent_runs(ws, limit=10)) == 10
    assert {r["run"] for r in recent_runs(ws, limit=100)} == set(made)
