"""The embedding job runs in its own process (embeddings, PCA, UMAP), refuses a second start,
and reports a dead process; the CLI's JSON."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from core.cli.main import main
from core.embeddings.jobs import embedding_job_status, start_embedding_job
from core.embeddings.projection import map_points
from core.errors import ImageLabError
from tests.core.test_embeddings_map import _with_labels, class_neighbourhood


def _wait(ws, dataset, until, timeout=400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = embedding_job_status(ws, dataset)
        if until(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"job status stayed {embedding_job_status(ws, dataset)}")


def test_background_job_embeds_then_maps_with_umap(sample_workspace):
    ws = sample_workspace
    assert embedding_job_status(ws, "digits") is None
    first = start_embedding_job(ws, "digits")
    assert first["state"] in ("starting", "running") and first["embedder"] == "pixels"
    assert first["total"] == 1797
    with pytest.raises(ImageLabError, match="already being computed"):
        start_embedding_job(ws, "digits")
    mid = _wait(ws, "digits", lambda s: s["stage"] in ("umap", "done") or s["state"] != "running"
                and s["state"] != "starting")
    assert mid["state"] != "failed", mid
    assert mid["done"] == mid["total"] == 1797
    assert map_points(ws, "digits")["method"].iloc[0] in ("pca", "umap")   # a map at once
    done = _wait(ws, "digits", lambda s: s["state"] in ("done", "failed"))
    assert done["state"] == "done", done
    df = _with_labels(ws, "digits", map_points(ws, "digits"))
    assert (df["method"] == "umap").all() and len(df) == 1797
    assert class_neighbourhood(df) >= 0.85        # UMAP keeps each digit together
    again = start_embedding_job(ws, "digits")     # a finished job does not block the next
    assert again["state"] in ("starting", "running")
    _wait(ws, "digits", lambda s: s["state"] in ("done", "failed"))


def test_a_killed_job_reads_as_failed(sample_workspace):
    ws = sample_workspace
    status = start_embedding_job(ws, "mnist-5k")
    pid = status["pid"]
    assert pid
    os.kill(pid, signal.SIGKILL)
    failed = _wait(ws, "mnist-5k", lambda s: s["state"] == "failed", timeout=30)
    assert "ended unexpectedly" in failed["message"]
    assert start_embedding_job(ws, "mnist-5k")["state"] in ("starting", "running")
    os.kill(embedding_job_status(ws, "mnist-5k")["pid"], signal.SIGKILL)


def test_cli_embed_and_similar_print_json(sample_workspace, capsys):
    ws = sample_workspace
    assert main(["embed", "mnist-5k", "--from", "pixels", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 5000 and out["embedder"] == "pixels" and out["embedded"] == 5000
    assert main(["embed", "mnist-5k", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 0      # nothing new
    with ws.db() as conn:
        image_id, path = conn.execute(
            "SELECT i.id, i.path FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "WHERE d.name = 'mnist-5k' ORDER BY i.id DESC").fetchone()
    assert main(["similar", "mnist-5k", str(image_id), "--k", "7", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 7 and all({"image_id", "label", "split", "distance"} <= set(h)
                                  for h in hits)
    assert image_id not in [h["image_id"] for h in hits]
    assert np.all(np.diff([h["distance"] for h in hits]) >= 0)
    assert main(["similar", "mnist-5k", str(ws.resolve(path)), "--k", "8", "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert [h["image_id"] for h in from_file] == [image_id] + [h["image_id"] for h in hits]
    bad = ws.root / "not-an-image.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but the rest is missing")
    assert main(["similar", "mnist-5k", str(bad), "--json"]) == 2
    assert "not an image" in json.loads(capsys.readouterr().out)["error"]
    assert main(["similar", "mnist-5k", "999999999", "--json"]) == 2
    assert "no image" in json.loads(capsys.readouterr().out)["error"]
