"""The 2-D map of a set of embeddings: PCA at once, UMAP when the background job has run.

- ``pca_coords``: the two principal axes, fitted on at most ``PCA_SAMPLE`` evenly spaced rows
  (a fixed sample, so the same vectors always give the same map) and applied to every row;
  stored as ``pca.npy`` in the set's version folder.
- ``compute_umap``: ``umap-learn`` (15 neighbours, min_dist 0.1, a fixed seed) on the
  vectors, first reduced to ``UMAP_INPUT_DIM`` PCA axes when they are wider (faster nearest
  neighbours, the same clusters); stored as ``umap.npy``. ``umap`` is imported inside it:
  its first import compiles numba code for ~35 s, so only the background job pays it.
- ``map_points``: every point (UMAP when stored, else PCA), as a DataFrame.
- ``display_points``: fewer points to *draw* when there are too many for a browser: a
  deterministic subset keeping at least one point of every category (label, colour…) in
  every cell of a 64×64 grid over the map, so no cluster or class disappears.
- ``points_in_polygon``: the image ids inside a lasso or box, tested against *all* points,
  never only the drawn ones.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import pandas as pd

from core.embeddings.search import stored_set
from core.embeddings.store import EmbeddingSet
from core.store.workspace import Workspace

PCA_SAMPLE = 10_000
UMAP_INPUT_DIM = 50
UMAP_NEIGHBOURS, UMAP_MIN_DIST, UMAP_SEED = 15, 0.1, 0
GRID = 64
PCA_FILE, UMAP_FILE = "pca.npy", "umap.npy"


def pca_coords(es: EmbeddingSet, dims: int = 2, save: bool = True) -> np.ndarray:
    """float32 N×``dims`` principal-axis coordinates of ``es`` (stored ones when 2-D)."""
    path = es.derived(PCA_FILE) if es.folder is not None else None
    if dims == 2 and path is not None and path.is_file():
        return np.load(path)
    n = len(es)
    sample = es.vectors32(np.linspace(0, n - 1, min(n, PCA_SAMPLE)).astype(np.int64))
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    axes = vt[:dims].T.astype(np.float32)
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), range(axes.shape[1])])
    axes *= np.where(signs == 0, 1, signs)          # a fixed orientation for the same data
    out = np.concatenate([(es.vectors32(slice(i, i + 50_000)) - mean) @ axes
                          for i in range(0, n, 50_000)]).astype(np.float32)
    if dims == 2 and save and path is not None:
        save_npy(path, out)
    return out


def compute_umap(ws: Workspace, dataset: str, embedder: str | None = None,
                 progress: Callable[[str], None] | None = None) -> np.ndarray:
    """UMAP coordinates (float32 N×2) of the stored set, computed and saved as ``umap.npy``
    (see the module docstring); returns the stored ones when they exist."""
    es = stored_set(ws, dataset, embedder)
    path = es.derived(UMAP_FILE)
    if path.is_file():
        return np.load(path)
    if progress:
        progress("importing umap-learn")
    import umap  # lazy: numba compiles on first import (~35 s); only the job pays it
    x = pca_coords(es, UMAP_INPUT_DIM, save=False) if es.dim > UMAP_INPUT_DIM else \
        es.vectors32()
    if len(es) <= UMAP_NEIGHBOURS + 1:     # too few points for a neighbour graph
        coords = pca_coords(es)
    else:
        if progress:
            progress(f"UMAP of {len(es):,} points")
        reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBOURS, min_dist=UMAP_MIN_DIST,
                            random_state=UMAP_SEED, n_jobs=1, low_memory=True)
        coords = reducer.fit_transform(x).astype(np.float32)
    save_npy(path, coords)
    return coords


def map_points(ws: Workspace, dataset: str, embedder: str | None = None) -> pd.DataFrame:
    """Every image of the stored set with its map position: columns ``image_id``, ``x``,
    ``y``, ``method`` ('umap' when computed, else 'pca', computed now)."""
    es = stored_set(ws, dataset, embedder)
    umap_path = es.derived(UMAP_FILE)
    coords, method = (np.load(umap_path), "umap") if umap_path.is_file() else \
        (pca_coords(es), "pca")
    return pd.DataFrame({"image_id": es.image_ids, "x": coords[:, 0], "y": coords[:, 1],
                         "method": method})


def display_points(df: pd.DataFrame, max_points: int, by: str | None = None) -> pd.DataFrame:
    """At most ``max_points`` rows of ``df`` to draw (all when it has no more), chosen
    deterministically: one point of every ``by`` category (default: the ``colour`` column,
    else ``label``) in every occupied cell of a ``GRID``×``GRID`` grid first (while they
    fit; at least one point of every category always), the rest by a fixed hash of the
    image id. For display only: select with ``points_in_polygon`` over ``df``."""
    if len(df) <= max_points:
        return df
    by = by or next((c for c in ("colour", "label") if c in df.columns), None)
    ids = df["image_id"].to_numpy(dtype=np.uint64)
    prio = ((ids * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)).astype(np.float64) / 2**53
    cats = (pd.factorize(df[by].astype(str))[0] if by else np.zeros(len(df), np.int64))
    cell = _cells(df["x"].to_numpy(), df["y"].to_numpy())
    frame = pd.DataFrame({"prio": prio, "cell": cell, "cat": cats})
    first_in_cell = frame.groupby(["cell", "cat"])["prio"].idxmin().to_numpy()
    first_of_cat = frame.groupby("cat")["prio"].idxmin().to_numpy()
    rank = prio.copy()
    rank[first_in_cell] -= 1.0
    rank[first_of_cat] -= 2.0
    keep = np.sort(np.argsort(rank, kind="stable")[:max(max_points, len(first_of_cat))])
    return df.iloc[keep]


def points_in_polygon(df: pd.DataFrame, xs, ys) -> np.ndarray:
    """The image ids of every row of ``df`` inside the polygon (``xs``, ``ys``: its
    vertices, closed automatically; even-odd rule), in ``df``'s order."""
    px, py = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(px) < 3 or len(px) != len(py):
        return np.zeros(0, dtype=np.int64)
    x, y = df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64)
    box = (x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max())
    cand = np.flatnonzero(box)
    cx, cy = x[cand], y[cand]
    inside = np.zeros(len(cand), dtype=bool)
    for x1, y1, x2, y2 in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
        crosses = (y1 > cy) != (y2 > cy)
        if not crosses.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (cy - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (cx < at)
    return df["image_id"].to_numpy(np.int64)[cand[inside]]


def save_npy(path, array: np.ndarray) -> None:
    """``np.save`` to a temporary name, then rename: readers see the whole file or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _cells(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    def bins(v):
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        return np.clip(((v - lo) / (hi - lo or 1.0) * GRID).astype(np.int64), 0, GRID - 1)
    return bins(x) * GRID + bins(y)
