"""The unlabelled queue ordered by a strategy: which image to label next, and its guess.

``active_queue`` reads the dataset's unlabelled images (``core.labels.selection``: every
image with no label, optionally of one split), predicts them with a finished run of the
dataset (default: its best, by best validation accuracy, the newest on a tie), and orders them
by ``core.active.strategies.select_batch``. Each item carries the run's predicted class (for
one-key acceptance) and every class's probability, most probable first (temperature-scaled
when the run has a fitted temperature). The predictions come from the decoded-pixel cache at
the run's size, batched, as evaluation reads them (``core.evaluation.evaluate.run_logits``).

With no finished run the queue is in random order, and ``message`` says why. ``diverse``
needs embeddings: the run's own (``run:ID``) or any stored set of the dataset, else (with
``compute_missing``, the CLI's default) the default embedder's are computed and stored now;
without them it falls back to margin, and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.active.strategies import DEFAULT_STRATEGY, check_strategy, select_batch, uncertainty
from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import RUN_PREFIX
from core.embeddings.store import EmbeddingSet, load_embeddings
from core.errors import ImageLabError
from core.evaluation.evaluate import run_logits
from core.evaluation.metrics import softmax
from core.labels.selection import UNLABELLED, ImageFilter, matching_labels
from core.store.workspace import Workspace
from core.training.run_model import load_run_model, run_dataset
from core.training.runs import get_run, list_runs


@dataclass
class QueueItem:
    """One unlabelled image in the queue: the predicted class ("" without a run), every
    class's probability (most probable first) and the strategy's score (larger: more worth
    labelling)."""
    image_id: int
    predicted: str
    probabilities: list[tuple[str, float]]
    score: float


@dataclass
class ActiveQueue:
    """The queue's first ``limit`` items, the run that predicted them (None: random order),
    the strategy applied, a message for the user ("" when all went as asked) and how many
    images are unlabelled in all."""
    items: list[QueueItem]
    run_id: str | None
    strategy: str
    message: str = ""
    unlabelled: int = 0
    embedder: str | None = None   # the embeddings the diverse order used

    def to_dict(self) -> dict:
        """Plain values for JSON (probabilities as [class, p] pairs)."""
        return asdict(self)


def best_run(ws: Workspace, dataset: str) -> str | None:
    """The dataset's finished run with the best validation accuracy (the newest on a tie),
    among those with a checkpoint; None when it has none."""
    runs = [r for r in list_runs(ws, limit=500, dataset=dataset) if r.status == "finished"
            and (r.paths.best.exists() or r.paths.last.exists())]
    if not runs:
        return None
    return max(runs, key=lambda r: r.metrics.get("best_val_accuracy") or 0.0).id


def unlabelled_ids(ws: Workspace, dataset: str, split: str | None = None) -> np.ndarray:
    """The ids of ``dataset``'s unlabelled images (of ``split`` only, if given), sorted."""
    return np.array(sorted(matching_labels(ws, dataset, ImageFilter(label=UNLABELLED, split=split))),
                    dtype=np.int64)


def active_queue(ws: Workspace, dataset: str, strategy: str = DEFAULT_STRATEGY,
                 run_id: str | None = None, limit: int = 50, *, split: str | None = None,
                 seed: int = 0, compute_missing: bool = True) -> ActiveQueue:
    """The first ``limit`` unlabelled images of ``dataset`` in ``strategy``'s order (see the
    module docstring). ``run_id``: the run that predicts (default: ``best_run``); ``seed``
    orders ties and the random strategy."""
    check_strategy(strategy)
    if limit < 1:
        raise ImageLabError(f"the queue's limit must be at least 1, not {limit}")
    ids = unlabelled_ids(ws, dataset, split)
    rng = np.random.default_rng(seed)
    if run_id is not None:
        get_run(ws, run_id)
        if run_dataset(ws, run_id) != dataset:
            raise ImageLabError(f"run {run_id} was trained on {run_dataset(ws, run_id)!r}, not "
                                f"{dataset!r}; choose a run of {dataset!r}")
    run_id = run_id or best_run(ws, dataset)
    if not len(ids):
        return ActiveQueue([], run_id, strategy, f"every image of {dataset!r} is labelled", 0)
    if run_id is None:
        order = rng.permutation(len(ids))[:limit]
        return ActiveQueue([QueueItem(int(ids[k]), "", [], 0.0) for k in order], None, "random",
                           f"{dataset!r} has no finished run yet, so the queue is in random "
                           f"order; train a run to order it by {strategy}", len(ids))
    lm = load_run_model(ws, run_id)
    probs = softmax(run_logits(ws, lm, dataset, ids).astype(np.float64), lm.temperature)
    message, embeddings, labelled_rows, es = "", None, None, None
    if strategy == "diverse":
        es = _embeddings(ws, dataset, run_id, ids, compute_missing)
        if es is None:
            strategy, message = "margin", ("no embeddings of this dataset yet: ordered by "
                                           "margin; compute embeddings for the diverse order")
        else:
            embeddings, labelled_rows = es.vectors32(), _labelled_rows(ws, dataset, es)
    if embeddings is not None:
        candidates = es.rows_of(ids)
    else:
        candidates = np.arange(len(ids))
    chosen = select_batch(strategy, probs, embeddings, candidates, min(limit, len(ids)), rng,
                          labelled=labelled_rows)
    position = {int(c): k for k, c in enumerate(candidates)}
    scores = uncertainty(probs, strategy)
    items = [_item(int(ids[position[int(c)]]), probs[position[int(c)]], scores[position[int(c)]],
                   lm.classes) for c in chosen]
    return ActiveQueue(items, run_id, strategy, message, len(ids),
                       es.embedder if es is not None else None)


def _item(image_id: int, p: np.ndarray, score: float, classes: list[str]) -> QueueItem:
    order = np.argsort(-p, kind="stable")
    return QueueItem(image_id, classes[int(order[0])],
                     [(classes[int(k)], float(p[k])) for k in order], float(score))


def _embeddings(ws: Workspace, dataset: str, run_id: str, ids: np.ndarray,
                compute_missing: bool) -> EmbeddingSet | None:
    """The run's own embeddings, else the newest stored set, when they cover ``ids``; else the
    default embedder's, computed now when ``compute_missing``; else None."""
    for es in (load_embeddings(ws, dataset, RUN_PREFIX + run_id), load_embeddings(ws, dataset)):
        if es is not None and (es.rows_of(ids) >= 0).all():
            return es
    if not compute_missing:
        return None
    stored = load_embeddings(ws, dataset)
    return compute_embeddings(ws, dataset, stored.embedder if stored is not None else None)


def _labelled_rows(ws: Workspace, dataset: str, es: EmbeddingSet) -> np.ndarray:
    """The rows of ``es`` of the dataset's labelled images (the diverse order keeps away)."""
    labelled = [i for i, label in matching_labels(ws, dataset, ImageFilter()).items()
                if label is not None]
    rows = es.rows_of(np.array(labelled, dtype=np.int64))
    return rows[rows >= 0]
