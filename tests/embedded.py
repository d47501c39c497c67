"""A sample workspace whose digits have embeddings (the Explore page tests, AppTest and
browser). They are computed in-process by the engine's ``compute_embeddings``; the map is
then the PCA view that ``map_points`` makes from them (UMAP, the background job's last
stage, is the engine's tests' concern and would cost each test module a numba compile)."""

from __future__ import annotations

from pathlib import Path

from core.embeddings.compute import compute_embeddings
from core.store.workspace import open_workspace
from tests.conftest import copy_workspace

DATASET = "digits"
EMBEDDER = "pixels"


def build_embedded_master(samples_master: Path, root: Path) -> Path:
    """A copy of ``samples_master`` at ``root`` with the digits embedded by ``pixels``."""
    copy_workspace(samples_master, root)
    embedded = compute_embeddings(open_workspace(root), DATASET, EMBEDDER)
    assert len(embedded) == 1797
    return root
