"""Semantic near-duplicates: a copy across splits is leakage; different images are not pairs."""

from __future__ import annotations

import numpy as np

from core.data.ingest import DatasetWriter
from core.data.tensor_cache import load_cache
from core.embeddings.compute import compute_embeddings
from core.embeddings.duplicates import default_max_distance, semantic_duplicates
from core.embeddings.embedders import PIXELS


def test_a_brightened_copy_in_another_split_is_leakage(sample_workspace):
    ws = sample_workspace
    cache = load_cache(ws, "mnist-5k", 28)
    with ws.db() as conn:
        split_of = dict(conn.execute("SELECT id, split FROM images"))
    row = int(np.flatnonzero([split_of[int(i)] == "train" for i in cache.image_ids])[0])
    original = np.asarray(cache.pixels[row, 0])
    moved = np.clip(original.astype(np.int16) + 12, 0, 255).astype(np.uint8)   # brighter
    with DatasetWriter(ws, "mnist-5k", "test", append=True) as w:
        w.add_array(moved, original_name="moved.png", label="5", split="test")
        w.commit()
    es = compute_embeddings(ws, "mnist-5k", PIXELS)
    limit = default_max_distance(es)
    assert 0 < limit < 0.05
    pairs = semantic_duplicates(ws, "mnist-5k")
    new_id = int(es.image_ids[-1])
    mine = [p for p in pairs if new_id in (p["a"], p["b"])]
    assert mine and {mine[0]["a"], mine[0]["b"]} == {int(cache.image_ids[row]), new_id}
    assert mine[0]["leakage"] and {mine[0]["split_a"], mine[0]["split_b"]} == {"train", "test"}
    assert all(p["distance"] <= limit for p in pairs)
    assert len(pairs) < len(es) * 0.01              # the rule keeps only the closest pairs
    assert all(p["leakage"] == (p["split_a"] != p["split_b"]) for p in pairs)
    wider = semantic_duplicates(ws, "mnist-5k", max_distance=limit * 3)
    assert len(wider) > len(pairs)
