"""Issue 18: does the active-learning queue beat labelling at random? (simulated oracle)

The product's own experiment (``core.active.simulate``, also ``python -m core al-bench``):
start from 2 labels per class of the training split, hide the others in memory, label a batch
per round by a strategy, retrain the learner (an RBF SVM on fixed embeddings that never saw a
label) and measure accuracy on held-out images; 3 seeds, the same start for every strategy of
a seed.

- **mnist-5k** (pixels embeddings; 3,500 train images as the pool, 750 test): the labels the
  default strategy needed to reach 95% test accuracy, as a ratio to random's (mean of 3 seeds),
  each curve ending at the first round that reaches it. Target ≤ 0.6.
- **cats-dogs photos** (``../shared/data/cats-dogs``, EfficientNet-Lite0 ImageNet embeddings;
  skipped with its reason when absent): imported 70% train / 30% test (420 / 180) so that one
  test image is 0.6 points; 30 rounds of 6. Whether the default strategy's accuracy (mean of 3
  seeds) is above random's at every round after the start. Target: every round (1.0).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Result

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "cats-dogs"
SEEDS = 3
TARGET = 0.95
PHOTO_SPLITS = {"train": 0.7, "test": 0.3}


def _log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _progress(done, total, message):
    if done == total or "embeddings" in message:
        _log(f"{message} ({done}/{total})")


def run() -> list[Result]:
    from core.active.strategies import DEFAULT_STRATEGY
    tmp = Path(tempfile.mkdtemp(prefix="bench-active-"))
    try:
        return [_mnist(tmp, DEFAULT_STRATEGY), _photos(tmp, DEFAULT_STRATEGY)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mnist(tmp: Path, strategy: str) -> Result:
    from core.active.simulate import simulate
    from core.data.samples import import_sample
    from core.store.workspace import open_workspace
    ws = open_workspace(tmp / "mnist")
    import_sample(ws, "sample:mnist-5k")
    t0 = time.perf_counter()
    r = simulate(ws, "mnist-5k", [strategy], seeds=SEEDS, target=TARGET, rounds=None,
                 stop_at_target=True, progress=_progress)
    seconds = time.perf_counter() - t0
    ratio = r.ratio_to_random[strategy]
    _log(r.verdicts[strategy])
    return Result(18, f"active learning, mnist-5k: labels to {TARGET:.0%} test accuracy, "
                      f"{strategy} / random (mean of {SEEDS} seeds; {r.embedder} embeddings, "
                      f"SVM, batch {r.batch}, {seconds:.0f}s)",
                  float("nan") if ratio is None else round(ratio, 3), "×", "<= 0.6",
                  detail=_detail(r, strategy, seconds))


def _photos(tmp: Path, strategy: str) -> Result:
    name = f"active learning, cats-dogs photos: rounds where {strategy} beats random"
    if not PHOTOS.is_dir():
        why = "../shared/data/cats-dogs not found"
        _log(f"photo part skipped: {why}")
        return Result(18, f"{name} (skipped: {why})", 0.0, "", detail={"skipped": why})
    from core.active.simulate import simulate
    from core.data.ingest import DatasetWriter
    from core.data.sources.folder import import_folder
    from core.embeddings.embedders import BACKBONE
    from core.store.workspace import open_workspace
    ws = open_workspace(tmp / "photos")
    with DatasetWriter(ws, "cats-dogs", str(PHOTOS), seed=0, fractions=PHOTO_SPLITS) as writer:
        import_folder(writer, PHOTOS)
        writer.commit()
    t0 = time.perf_counter()
    r = simulate(ws, "cats-dogs", [strategy], seeds=SEEDS, target=TARGET, batch=6, rounds=30,
                 embedder=BACKBONE, progress=_progress)
    seconds = time.perf_counter() - t0
    won, worst = r.rounds_won[strategy], r.worst_round_difference[strategy]
    _log(r.verdicts[strategy])
    return Result(18, f"{name} (mean of {SEEDS} seeds, {len(r.mean_curve(strategy)[0]) - 1} "
                      f"rounds of {r.batch}; worst round {100 * worst:+.1f} points; "
                      f"{seconds:.0f}s with the embeddings)",
                  round(won, 3), "of rounds", ">= 1.0", detail=_detail(r, strategy, seconds))


def _detail(r, strategy: str, seconds: float) -> dict:
    return {"labels_to_target": {s: r.labels_to_target[s] for s in r.strategies},
            "mean_curves": {s: dict(zip(("labels", "accuracy"), r.mean_curve(s)))
                            for s in r.strategies},
            "rounds_won": r.rounds_won[strategy],
            "worst_round_difference": r.worst_round_difference[strategy],
            "verdict": r.verdicts[strategy], "pool": r.pool_size, "heldout": r.heldout_size,
            "heldout_split": r.heldout_split, "embedder": r.embedder, "model": r.model,
            "learner": r.learner, "batch": r.batch, "start": r.start, "seconds": round(seconds, 1)}
