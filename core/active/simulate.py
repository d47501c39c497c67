"""The simulated-oracle experiment: does a strategy's queue beat labelling at random?

The dataset's labelled training images become the pool. Each seed draws a few labels per
class to start from (the same start for every strategy of that seed); the pool's other
labels are hidden, in memory: nothing is written and the user's labels are only read. Each
round the strategy picks ``batch`` images of the pool, their hidden labels are revealed (the
oracle), the learner (``core.active.learner``: an SVM on fixed embeddings that never saw a
label) is retrained on the revealed labels, and its accuracy on the held-out split (test, or
val when the dataset has no test images) is recorded against the labels used.

The embeddings are ``pixels`` or the ImageNet backbone (the default embedder's choice
between the two), computed and stored when missing. A run's own features (``run:ID``) are
refused: that run was trained on the labels the experiment hides, so they would leak.
``core.active.results`` turns the curves into labels-to-target, ratios and verdicts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.active.defaults import DEFAULT_ROUNDS, DEFAULT_SEEDS, DEFAULT_START_PER_CLASS, DEFAULT_TARGET
from core.active.learner import EmbeddingClassifier, pool_gamma
from core.active.results import Curve, SimulationResult, summarise
from core.active.strategies import STRATEGIES, check_strategy, select_batch
from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import BACKBONE, PIXELS, RUN_PREFIX, default_embedder
from core.embeddings.store import load_embeddings
from core.errors import ImageLabError
from core.evaluation.evaluate import labelled_rows
from core.store.workspace import Workspace

Progress = Callable[[int, int, str], None]


@dataclass
class SimulationData:
    """The pool (training images with their hidden labels) and the held-out images, as
    embedding vectors and class indices into ``classes``."""
    dataset: str
    embedder: str
    model: str
    classes: list[str]
    pool_x: np.ndarray
    pool_y: np.ndarray
    heldout_x: np.ndarray
    heldout_y: np.ndarray
    heldout_split: str
    pool_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def simulation_embedder(ws: Workspace, dataset: str, embedder: str | None) -> str:
    """The embedder the experiment uses: ``embedder``, or the ImageNet backbone where the
    default embedder picks it (photos), else ``pixels``. A run's features are refused."""
    if embedder is None:
        return BACKBONE if default_embedder(ws, dataset) == BACKBONE else PIXELS
    if embedder.startswith(RUN_PREFIX):
        raise ImageLabError(f"the experiment cannot use {embedder!r}: a run's features were "
                            "trained on the labels the experiment hides, so they would leak "
                            f"them; use {PIXELS} or {BACKBONE}")
    return embedder


def simulation_data(ws: Workspace, dataset: str, embedder: str | None = None,
                    progress: Progress | None = None) -> SimulationData:
    """Read the pool and the held-out split of ``dataset`` with their embeddings (computed and
    stored first where missing)."""
    key = simulation_embedder(ws, dataset, embedder)
    pool_ids, pool_names, _ = labelled_rows(ws, dataset, "train")
    heldout_split = "test"
    held_ids, held_names, _ = labelled_rows(ws, dataset, "test")
    if not len(held_ids):
        heldout_split = "val"
        held_ids, held_names, _ = labelled_rows(ws, dataset, "val")
    if not len(held_ids):
        raise ImageLabError(f"dataset {dataset!r} has no labelled test or val images to measure "
                            "accuracy on; move some labelled images to the test split")
    classes = sorted(set(pool_names))
    if len(classes) < 2:
        raise ImageLabError(f"dataset {dataset!r} needs labelled training images of at least "
                            "two classes for the experiment")
    es = load_embeddings(ws, dataset, key)
    wanted = np.concatenate([pool_ids, held_ids])
    if es is None or (es.rows_of(wanted) < 0).any():
        if progress:
            progress(0, 1, f"computing {key} embeddings of {dataset!r}")
        es = compute_embeddings(ws, dataset, key)
    index = {c: k for k, c in enumerate(classes)}
    return SimulationData(
        dataset, key, es.model, classes, es.vectors32(es.rows_of(pool_ids)),
        np.array([index[n] for n in pool_names], dtype=np.int64),
        es.vectors32(es.rows_of(held_ids)),
        np.array([index.get(n, -1) for n in held_names], dtype=np.int64), heldout_split,
        pool_ids)


def start_labels(pool_y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` pool rows of every class (all of a class that has fewer), drawn by ``rng``."""
    picks = [rng.permutation(np.flatnonzero(pool_y == c))[:per_class]
             for c in np.unique(pool_y)]
    return np.concatenate(picks).astype(np.int64)


def run_strategy(data: SimulationData, strategy: str, seed: int, *, batch: int,
                 start_per_class: int = DEFAULT_START_PER_CLASS, max_labels: int | None = None,
                 target: float | None = None, stop_at_target: bool = False) -> Curve:
    """One strategy on one seed: accuracy on the held-out images after the start and after
    every round, until ``max_labels`` labels (default: the whole pool) or, with
    ``stop_at_target``, the first round at or above ``target``."""
    check_strategy(strategy)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    labelled = start_labels(data.pool_y, start_per_class, rng)
    limit = len(data.pool_y) if max_labels is None else min(int(max_labels), len(data.pool_y))
    is_labelled = np.zeros(len(data.pool_y), dtype=bool)
    is_labelled[labelled] = True
    learner = EmbeddingClassifier(len(data.classes), gamma=pool_gamma(data.pool_x))
    labels, accuracy = [], []
    while True:
        learner.fit(data.pool_x[labelled], data.pool_y[labelled])
        acc = float((learner.predict(data.heldout_x) == data.heldout_y).mean())
        labels.append(len(labelled))
        accuracy.append(acc)
        room = limit - len(labelled)
        if room <= 0 or (stop_at_target and target is not None and acc >= target):
            break
        candidates = np.flatnonzero(~is_labelled)
        probs = None if strategy == "random" else learner.predict_proba(data.pool_x[candidates])
        chosen = select_batch(strategy, probs, data.pool_x, candidates, min(batch, room), rng,
                              labelled=labelled)
        is_labelled[chosen] = True           # the oracle reveals their hidden labels
        labelled = np.concatenate([labelled, chosen])
    return Curve(strategy, seed, labels, accuracy, time.perf_counter() - t0)


def default_batch(pool_size: int) -> int:
    """Images labelled per round when none is given: about a seventieth of the pool
    (50 on mnist-5k's 3,500), at least 5 and at most 200."""
    return max(5, min(200, pool_size // 70))


def simulate(ws: Workspace, dataset: str, strategies: tuple[str, ...] | list[str] = STRATEGIES,
             *, seeds: int = DEFAULT_SEEDS, batch: int | None = None,
             start_per_class: int = DEFAULT_START_PER_CLASS, target: float = DEFAULT_TARGET,
             rounds: int | None = DEFAULT_ROUNDS, embedder: str | None = None,
             stop_at_target: bool = False, progress: Progress | None = None) -> SimulationResult:
    """Run the experiment for ``strategies`` (random is always added: it is the baseline) on
    ``seeds`` seeds; ``rounds`` None runs until the pool is used up. Returns the curves,
    labels to reach ``target``, ratios to random and verdicts (``core.active.results``)."""
    strategies = ["random"] + [check_strategy(s) for s in strategies if s != "random"]
    if seeds < 1 or (batch is not None and batch < 1) or start_per_class < 1:
        raise ImageLabError("seeds, batch and start per class must each be at least 1")
    if not 0 < target <= 1:
        raise ImageLabError(f"the target accuracy must be in (0, 1], not {target}")
    t0 = time.perf_counter()
    data = simulation_data(ws, dataset, embedder, progress)
    pool = len(data.pool_y)
    batch = batch or default_batch(pool)
    start = len(start_labels(data.pool_y, start_per_class, np.random.default_rng(0)))
    if start >= pool:
        raise ImageLabError(f"the pool of {pool} labelled training images is used up by the "
                            f"start of {start_per_class} per class; nothing is left to choose")
    max_labels = pool if rounds is None else min(pool, start + int(rounds) * batch)
    curves, total, done = [], len(strategies) * seeds, 0
    for strategy in strategies:
        for seed in range(seeds):
            if progress:
                progress(done, total, f"{strategy}, seed {seed + 1} of {seeds}")
            curves.append(run_strategy(data, strategy, seed, batch=batch,
                                       start_per_class=start_per_class, max_labels=max_labels,
                                       target=target, stop_at_target=stop_at_target))
            done += 1
    if progress:
        progress(total, total, "done")
    return summarise(data, curves, target=target, batch=batch, start=start,
                     max_labels=max_labels, seconds=time.perf_counter() - t0,
                     stopped_at_target=stop_at_target)

