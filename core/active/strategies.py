"""Which unlabelled images to label next: uncertainty scores and batch selection.

Pure numpy, no workspace: the label queue (``core.active.queue``) and the simulated oracle
(``core.active.simulate``) both choose through ``select_batch``.

- ``random``: a seeded shuffle; the baseline every other strategy must beat.
- ``least-confidence``: 1 - the top probability.
- ``margin``: 1 - (top probability - second probability): the images the model is torn
  between two classes on.
- ``entropy``: the Shannon entropy of the probabilities (natural log).
- ``diverse``: uncertainty over a k-center-greedy selection. The ``DIVERSE_POOL`` × batch
  candidates of largest margin score are kept, then picked one at a time, each the one
  farthest (Euclidean, in the embedding space) from everything labelled or picked so far.
  Margin alone tends to fill a batch with near-copies of one confusion (many 4/9s written
  the same way); the k-center step spreads the batch over the uncertain regions.
"""

from __future__ import annotations

import numpy as np

from core.errors import ImageLabError

STRATEGIES = ("random", "least-confidence", "margin", "entropy", "diverse")
DEFAULT_STRATEGY = "margin"   # chosen by measurement: see docs/DECISIONS.md ("Active learning")
DIVERSE_POOL = 10             # "diverse" keeps this many × batch most uncertain candidates
_CHUNK = 4096                 # rows per block of distance computations


def check_strategy(strategy: str) -> str:
    """``strategy`` if it is one of ``STRATEGIES``, else a clear ``ImageLabError``."""
    if strategy not in STRATEGIES:
        raise ImageLabError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return strategy


def uncertainty(probs: np.ndarray, strategy: str) -> np.ndarray:
    """One score per row of ``probs`` (N×classes): larger means more worth labelling.

    ``random`` scores every row 0 (its order comes from the generator in ``select_batch``);
    ``diverse`` scores by margin, the uncertainty it selects over.
    """
    check_strategy(strategy)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ImageLabError(f"probabilities must be a 2-D array (images × classes), not {p.shape}")
    if strategy == "random" or len(p) == 0:
        return np.zeros(len(p))
    if strategy == "least-confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        return -(p * np.log(q)).sum(axis=1)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top2 = np.sort(p, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def select_batch(strategy: str, probs: np.ndarray | None, embeddings: np.ndarray | None,
                 candidates: np.ndarray, batch: int, rng: np.random.Generator,
                 labelled: np.ndarray | None = None) -> np.ndarray:
    """The ``batch`` candidates to label next, most wanted first.

    ``candidates``: row indices (into ``embeddings``) of the unlabelled images to choose from;
    ``probs[k]``: the model's probabilities for ``candidates[k]`` (unused by ``random``);
    ``embeddings``: N×D vectors of every image (used by ``diverse`` only); ``labelled``: rows
    of ``embeddings`` already labelled (``diverse`` keeps away from them). Ties keep the
    order the generator ``rng`` shuffled them into, so equal scores never favour low ids.
    Returns candidate row indices (a subset of ``candidates``), in the order they were chosen.
    """
    check_strategy(strategy)
    candidates = np.asarray(candidates, dtype=np.int64)
    batch = max(0, min(int(batch), len(candidates)))
    shuffled = rng.permutation(len(candidates))
    if strategy == "random" or batch == 0:
        return candidates[shuffled[:batch]]
    if probs is None or len(probs) != len(candidates):
        raise ImageLabError(f"strategy {strategy!r} needs one row of probabilities per candidate")
    scores = uncertainty(probs, strategy)[shuffled]
    order = shuffled[np.argsort(-scores, kind="stable")]
    if strategy != "diverse":
        return candidates[order[:batch]]
    if embeddings is None:
        raise ImageLabError("strategy 'diverse' needs image embeddings")
    pool = candidates[order[:min(len(order), DIVERSE_POOL * batch)]]
    return k_center_greedy(np.asarray(embeddings), pool, batch,
                           np.asarray(labelled if labelled is not None else [], dtype=np.int64))


def k_center_greedy(embeddings: np.ndarray, pool: np.ndarray, batch: int,
                    centers: np.ndarray) -> np.ndarray:
    """Pick ``batch`` rows of ``pool``, each the farthest from ``centers`` and the rows picked
    before it (Sener & Savarese's k-center greedy). With no centers the first pick is
    ``pool[0]`` (the caller's most wanted). Returns the picked rows in order."""
    x = embeddings[pool].astype(np.float32)
    nearest = np.full(len(pool), np.inf, dtype=np.float32)
    for start in range(0, len(centers), _CHUNK):
        nearest = np.minimum(nearest, _min_sq_dist(x, embeddings[centers[start:start + _CHUNK]]))
    picked: list[int] = []
    for _ in range(min(batch, len(pool))):
        k = int(np.argmax(nearest))   # all infinite (no centers yet): the first, pool[0]
        picked.append(k)
        nearest = np.minimum(nearest, _min_sq_dist(x, x[k:k + 1]))
        nearest[k] = -1.0   # never again
    return pool[np.array(picked, dtype=np.int64)]


def _min_sq_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For each row of ``x``, the squared Euclidean distance to its nearest row of ``y``."""
    y = np.asarray(y, dtype=np.float32)
    d = (x * x).sum(1)[:, None] - 2.0 * x @ y.T + (y * y).sum(1)[None, :]
    return np.maximum(d.min(axis=1), 0.0)
