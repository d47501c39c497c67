"""Embeddings are stored whole, reused by content and recomputed only for new content."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.ingest import DatasetWriter
from core.data.tensor_cache import load_cache
from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import BACKBONE, PIXELS, available_embedders, default_embedder, load_embedder
from core.embeddings.store import check_key, list_embeddings, load_embeddings, set_dir
from core.errors import ImageLabError


def test_pixels_set_is_stored_normalised_and_complete(sample_workspace):
    ws = sample_workspace
    assert load_embeddings(ws, "digits") is None
    es = compute_embeddings(ws, "digits", PIXELS)
    with ws.db() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT i.id FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "WHERE d.name = 'digits' ORDER BY i.id")]
    assert es.image_ids.tolist() == ids
    assert es.vectors.dtype == np.float16 and isinstance(es.vectors, np.memmap)
    norms = np.linalg.norm(es.vectors32(), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)
    assert es.row_of(ids[5]) == 5 and es.row_of(10**9) is None
    assert es.rows_of([ids[3], 10**9]).tolist() == [3, -1]
    again = load_embeddings(ws, "digits")
    assert again.embedder == PIXELS and np.array_equal(again.vectors, es.vectors)
    listed = list_embeddings(ws, "digits")
    assert [m["embedder"] for m in listed] == [PIXELS] and listed[0]["count"] == len(ids)
    home = set_dir(ws, int(es.folder.parent.parent.name), PIXELS)
    assert es.folder.parent == home
    versions = [p for p in home.iterdir() if p.is_dir()]
    assert versions == [es.folder]          # one complete version, named by current.json
    assert json.loads((home / "current.json").read_text())["version"] == es.folder.name


def test_only_new_content_is_embedded(sample_workspace):
    ws = sample_workspace
    first = compute_embeddings(ws, "digits", PIXELS)
    calls = []
    same = compute_embeddings(ws, "digits", PIXELS, progress=lambda d, t: calls.append((d, t)))
    assert same.folder == first.folder                 # nothing changed: nothing written
    assert calls == [(len(first), len(first))]
    cache = load_cache(ws, "digits", 8)
    old = np.asarray(cache.pixels[:3, 0])
    with DatasetWriter(ws, "digits", "test", append=True) as w:
        w.add_array(255 - old[0], original_name="inverted.png", label="0")   # new content
        w.add_array(old[1], original_name="copy.png", label="1")             # known content
        w.commit()
    calls.clear()
    second = compute_embeddings(ws, "digits", PIXELS, progress=lambda d, t: calls.append((d, t)))
    assert len(second) == len(first) + 2
    assert calls[0] == (len(first) + 1, len(first) + 2)   # only the inverted image embedded
    rows = second.rows_of(first.image_ids)
    assert np.array_equal(second.vectors[rows], first.vectors)   # kept rows are the same bits
    copy_row, inverted_row = len(second) - 1, len(second) - 2
    assert np.array_equal(second.vectors[copy_row], first.vectors[1])
    fresh = load_embedder(ws, "digits", PIXELS).embed_levels(
        np.asarray(load_cache(ws, "digits", 8).pixels[[inverted_row]]))
    assert np.allclose(second.vectors32([inverted_row]), fresh, atol=2e-3)
    assert not first.folder.exists()                   # the old version was replaced


def test_default_and_available_embedders(trained_workspace):
    ws, run_id = trained_workspace
    assert default_embedder(ws, "mnist-5k") == PIXELS          # no run, not photos
    keys = [c.key for c in available_embedders(ws, "mnist-5k")]
    assert keys[0] == PIXELS and BACKBONE in keys
    assert default_embedder(ws, "digits") == f"run:{run_id}"
    choices = available_embedders(ws, "digits")
    assert choices[0].key == f"run:{run_id}" and "val" in choices[0].reason


def test_run_embedder_gives_penultimate_features(trained_workspace):
    ws, run_id = trained_workspace
    es = compute_embeddings(ws, "digits")
    assert es.embedder == f"run:{run_id}" and run_id in es.model
    assert 8 <= es.dim < 1000 and np.allclose(np.linalg.norm(es.vectors32(), axis=1), 1,
                                               atol=2e-3)
    with ws.db() as conn:
        labels = dict(conn.execute("SELECT i.id, c.name FROM images i JOIN classes c "
                                   "ON c.id = i.class_id"))
    v = es.vectors32()
    nearest = np.argsort(-(v[:200] @ v.T), axis=1)[:, 1]
    same = [labels[int(es.image_ids[i])] == labels[int(es.image_ids[j])]
            for i, j in enumerate(nearest)]
    assert np.mean(same) >= 0.85          # a 4-epoch digits run already groups by class


def test_bad_embedder_keys_are_refused(sample_workspace):
    with pytest.raises(ImageLabError, match="not an embedder"):
        check_key("../x")
    with pytest.raises(ImageLabError, match="unknown embedder"):
        compute_embeddings(sample_workspace, "digits", "resnet:zzz")
    with pytest.raises(ImageLabError):
        compute_embeddings(sample_workspace, "digits", "run:nosuchrun")
