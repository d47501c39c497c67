""""More like this" on real digits: same class, same answer from a file, HNSW ≈ exact."""

from __future__ import annotations

import numpy as np
import pytest

from core.embeddings import index
from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import PIXELS
from core.embeddings.search import similar_to_file, similar_to_image
from core.errors import ImageLabError


def _labels(ws, dataset):
    with ws.db() as conn:
        return dict(conn.execute(
            "SELECT i.id, c.name FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "LEFT JOIN classes c ON c.id = i.class_id WHERE d.name = ?", (dataset,)))


def test_neighbours_of_a_digit_are_mostly_that_digit(sample_workspace):
    ws = sample_workspace
    es = compute_embeddings(ws, "mnist-5k", PIXELS)
    labels = _labels(ws, "mnist-5k")
    queries = es.image_ids[np.random.default_rng(0).choice(len(es), 60, replace=False)]
    agree = []
    for image_id in queries:
        hits = similar_to_image(ws, "mnist-5k", int(image_id), k=5)
        assert len(hits) == 5 and int(image_id) not in [h.image_id for h in hits]
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        votes = [h.label for h in hits]
        agree.append(max(set(votes), key=votes.count) == labels[int(image_id)])
        assert all(h.split in ("train", "val", "test") for h in hits)
    assert np.mean(agree) >= 0.9


def test_a_file_finds_the_same_neighbours_as_its_image(sample_workspace):
    ws = sample_workspace
    compute_embeddings(ws, "mnist-5k", PIXELS)
    with ws.db() as conn:
        image_id, path = conn.execute(
            "SELECT i.id, i.path FROM images i JOIN datasets d ON d.id = i.dataset_id "
            "WHERE d.name = 'mnist-5k' ORDER BY i.id LIMIT 1 OFFSET 77").fetchone()
    by_id = similar_to_image(ws, "mnist-5k", image_id, k=8)
    by_file = similar_to_file(ws, "mnist-5k", ws.resolve(path).read_bytes(), k=9)
    assert by_file[0].image_id == image_id and by_file[0].distance < 2e-3
    assert [h.image_id for h in by_file[1:]] == [h.image_id for h in by_id]
    assert np.allclose([h.distance for h in by_file[1:]], [h.distance for h in by_id],
                       atol=2e-3)


def test_hnsw_agrees_with_exact_search(sample_workspace):
    ws = sample_workspace
    es = compute_embeddings(ws, "mnist-5k", PIXELS)
    assert not index.uses_index(len(es), es.dim)          # 5k × 256 is searched exactly
    queries = es.vectors32(np.arange(0, len(es), 50))
    rows_exact, d_exact = index.search(es, queries, 20, exact=True)
    rows_hnsw, d_hnsw = index.search(es, queries, 20, exact=False)
    assert es.derived(index.INDEX_FILE).is_file()        # built once, kept beside the vectors
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(rows_exact, rows_hnsw)])
    assert recall >= 0.95
    assert np.allclose(d_exact[:, 0], d_hnsw[:, 0], atol=1e-4)   # each finds itself first
    assert (rows_exact[:, 0] == np.arange(0, len(es), 50)).all()


def test_bad_queries_get_clear_messages(sample_workspace):
    ws = sample_workspace
    with pytest.raises(ImageLabError, match="no embeddings"):
        similar_to_image(ws, "digits", 1)
    compute_embeddings(ws, "digits", PIXELS)
    with pytest.raises(ImageLabError, match="not an image"):
        similar_to_file(ws, "digits", b"GIF89a this is not really a picture")
    with pytest.raises(ImageLabError, match="no image"):
        similar_to_image(ws, "digits", 10**9)
    with pytest.raises(ImageLabError, match="between 1 and"):
        similar_to_image(ws, "digits", 1, k=0)
