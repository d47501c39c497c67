"""Evaluation benchmark (issue 7): evaluating a 10,000-image split reuses the decoded
cache and batches inference, so it should be limited by the model, not by loading.

Measured in one run on the same trained model (a real run: the default ``compact`` CNN,
trained for one epoch on 10,000 generated ``shapes`` images at 32×32):

- ``evaluate``: wall-clock images/s of ``evaluate_run(..., split="all", refresh=True)``
  over all 10,000 images, best of two — cache read, batched inference, metrics, stored results
  (the validation temperature is fitted once beforehand, as on first use);
- ``forward``: images/s of the same model's forward pass, same batch size and precision,
  on the same images already in memory as normalised float tensors, best of two.

Target: evaluate ≥ 0.8× forward.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.harness import Result

N_IMAGES = 10_000


def run() -> list[Result]:
    from core.data.samples import import_sample
    from core.data.tensor_cache import load_cache
    from core.evaluation.evaluate import BATCH_SIZE, evaluate_run
    from core.inference.predictor import load_run_model
    from core.store.workspace import open_workspace
    from core.training.config import TrainConfig
    from core.training.run import train_run
    from core.training.runs import create_run

    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        ws = open_workspace(tmp / "ws")
        import_sample(ws, "sample:shapes", "shapes10k", count=N_IMAGES, size=32)
        run = create_run(ws, TrainConfig(dataset="shapes10k", epochs=1, image_size=32))
        train_run(ws, run.id)
        evaluate_run(ws, run.id, split="val")          # fits the temperature once
        eval_s = float("inf")
        for _ in range(2):                              # best of 2, like the forward below
            t0 = time.perf_counter()
            report = evaluate_run(ws, run.id, split="all", refresh=True)
            eval_s = min(eval_s, time.perf_counter() - t0)
        n = report["num_samples"]

        lm = load_run_model(ws, run.id)
        cache = load_cache(ws, "shapes10k", lm.image_size)
        x = lm.to_tensor(np.asarray(cache.pixels))[:n]
        best = float("inf")
        with torch.inference_mode():
            for _ in range(2):
                t0 = time.perf_counter()
                for i in range(0, len(x), BATCH_SIZE):
                    lm.model(x[i:i + BATCH_SIZE])
                best = min(best, time.perf_counter() - t0)
        eval_ips, fwd_ips = n / eval_s, len(x) / best
        return [Result(7, "evaluate 10k images vs bare forward on in-memory tensors",
                       eval_ips / fwd_ips, "×", ">= 0.8",
                       detail={"evaluate_images_per_s": round(eval_ips, 1),
                               "forward_images_per_s": round(fwd_ips, 1), "images": n,
                               "model": lm.arch, "image_size": lm.image_size,
                               "batch_size": BATCH_SIZE, "accuracy": report["accuracy"]})]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
