"""Issue 6: the few-shot curve — what a pretrained start buys over training from scratch.

Pretrain the compact CNN once on mnist-5k (16 px). Then, for k = 1, 2, 5 and 10 training
images per class of digits (blurry 8×8 scans scaled up: another domain), train three ways
with the same budget (the same number of steps, batch and augmentation) on the same k
images, and measure accuracy on the same held-out digits test images:

- from scratch (the engine's defaults);
- head only (a linear probe: every other group frozen, BatchNorm statistics too);
- full fine-tuning with discriminative learning rates (0.1× at the stem up to 1× at the head).

Each figure is the mean of 3 seeds (the seed picks the k images and the initialisation).
Targets: fine-tuned at least 15 points above scratch at k = 1 and 10 points at k = 2.

The feature cache's ratio on photos (issue 16) is in ``bench_photos.py``'s photo table.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Result

KS = (1, 2, 5, 10)
SEEDS = (0, 1, 2)
SIZE = 16
PRETRAIN_EPOCHS = 6
STEPS = 60                       # the training budget for every few-shot run, in steps
FULL_MULTS = "discriminative:0.1"
TARGETS = {1: 15.0, 2: 10.0}


def _train_few_shot(ws, cfg, positions, test):
    from core.finetune.callback import FineTuning
    from core.finetune.fewshot import accuracy_on, restrict_train
    from core.training.loop import train_one_epoch
    from core.training.run import build_trainer
    t = build_trainer(ws, cfg, callbacks=[FineTuning()])    # a no-op for the scratch config
    restrict_train(t, positions)
    for epoch in range(cfg.epochs):     # no per-epoch validation: only the test figure counts
        t.epoch, t.step, t.accum = epoch, 0, {}
        train_one_epoch(t)
    return accuracy_on(t, test)


def run() -> list[Result]:
    return run_few_shot()


def run_few_shot() -> list[Result]:
    import torch

    from core.data.samples import import_sample
    from core.finetune.fewshot import few_shot_positions, load_split
    from core.finetune.setup import FinetuneConfig, prepare_finetune
    from core.store.workspace import open_workspace
    from core.training.config import TrainConfig
    from core.training.data import load_training_data
    from core.training.run import train_run
    from core.training.runs import create_run, prepare_config

    tmp = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    try:
        ws = open_workspace(tmp / "ws")
        import_sample(ws, "sample:mnist-5k")
        import_sample(ws, "sample:digits")
        t0 = time.perf_counter()
        pre = create_run(ws, TrainConfig(dataset="mnist-5k", arch="compact", image_size=SIZE,
                                         epochs=PRETRAIN_EPOCHS, batch_size=128))
        pre_summary = train_run(ws, pre.id)
        pretrain_s = time.perf_counter() - t0
        print(f"  pretrained {pre.id} on mnist-5k: val accuracy "
              f"{pre_summary['metrics']['val_accuracy']:.3f} in {pretrain_s:.0f}s",
              file=sys.stderr, flush=True)
        device = torch.device("cpu")
        train_labels = load_training_data(ws, "digits", SIZE, device).train.labels
        test = load_split(ws, "digits", "test", SIZE, device)
        rows, t1 = {}, time.perf_counter()
        for k in KS:
            n = k * 10
            batch = min(32, n)
            epochs = math.ceil(STEPS / (n // batch))
            base = dict(dataset="digits", arch="compact", image_size=SIZE, batch_size=batch,
                        epochs=epochs, device="cpu")
            acc = {"scratch": [], "head": [], "full": []}
            for seed in SEEDS:
                pos = few_shot_positions(train_labels, k, seed)
                scratch = prepare_config(ws, TrainConfig(**base, seed=seed))
                acc["scratch"].append(_train_few_shot(ws, scratch, pos, test))
                for mode, ft in (("head", FinetuneConfig(pre.id, freeze="head")),
                                 ("full", FinetuneConfig(pre.id, lr_mults=FULL_MULTS))):
                    cfg = prepare_finetune(ws, TrainConfig(**base, seed=seed), ft).cfg
                    acc[mode].append(_train_few_shot(ws, cfg, pos, test))
            rows[k] = {m: 100 * statistics.mean(v) for m, v in acc.items()}
            rows[k]["runs"] = {m: [round(100 * a, 1) for a in v] for m, v in acc.items()}
            r = rows[k]
            print(f"  k={k:>2}: scratch {r['scratch']:5.1f}%  head-only {r['head']:5.1f}% "
                  f"(gain {r['head'] - r['scratch']:+5.1f})  full+discriminative "
                  f"{r['full']:5.1f}% (gain {r['full'] - r['scratch']:+5.1f})",
                  file=sys.stderr, flush=True)
        few_shot_s = time.perf_counter() - t1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    detail = {"test_images": len(test), "image_size": SIZE, "steps": STEPS, "seeds": list(SEEDS),
              "pretrain_val_accuracy": pre_summary["metrics"]["val_accuracy"],
              "pretrain_seconds": round(pretrain_s, 1), "few_shot_seconds": round(few_shot_s, 1),
              "per_k": {str(k): {m: (round(v, 2) if isinstance(v, float) else v)
                                 for m, v in r.items()} for k, r in rows.items()}}
    results = []
    for k in KS:
        r = rows[k]
        best = max(r["head"], r["full"])
        target = f">= {TARGETS[k]:g}" if k in TARGETS else ""
        results.append(Result(6, f"few-shot k={k}: fine-tuned − scratch, test accuracy points "
                                 f"(scratch {r['scratch']:.1f}%, head-only {r['head']:.1f}%, "
                                 f"full {r['full']:.1f}%)",
                              round(best - r["scratch"], 1), "points", target, detail=detail))
    return results


if __name__ == "__main__":
    for res in run():
        print(res)
