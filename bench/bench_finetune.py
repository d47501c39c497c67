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

Issue 16 item 4, the feature cache: on the shared cats-dogs photos (``../shared/data``;
skipped, visibly, without them), imported by the product's folder import with an 80/20
train/val split fixed by seed, head-only fine-tuning of ``efficientnet_lite0:imagenet``
(a random-init EfficientNet-Lite0 when those weights are not installed) at
``CACHE_SIZE`` px for ``CACHE_EPOCHS`` epochs with flips, twice: the body run at every
step, and the head trained on cached body features. Wall time of each (building the
trainer included, the decoded pixel cache built beforehand) and both validation
accuracies. Target: the cache ≥ 5× faster for the same accuracy.
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

PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cats-dogs"
CACHE_SOURCE = "efficientnet_lite0:imagenet"
# Head-only training on cached features costs ~2 body passes per train image (the image
# and its mirror) plus one per val image, whatever the epochs; the body run at every step
# costs one per image per epoch. So the ratio is about epochs × (N + V) / (2N + V), 0.56 ×
# epochs here, less the fixed costs: measured at 128 px, 10 epochs gave 4.9× (451 s / 92 s
# on 2 busy cores). 12 epochs at 112 px keep the uncached run near a minute and a half on
# 2 idle cores (EfficientNet-Lite0 forward ~80 images/s there).
CACHE_SIZE = 112
CACHE_EPOCHS = 12


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
    return run_few_shot() + run_feature_cache()


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


def _photo_workspace(tmp: Path):
    from core.data.ingest import DatasetWriter
    from core.data.sources.folder import import_folder
    from core.store.workspace import open_workspace
    ws = open_workspace(tmp / "ws")
    with DatasetWriter(ws, "cats-dogs", str(PHOTOS), seed=0,
                       fractions={"train": 0.8, "val": 0.2}) as writer:
        import_folder(writer, PHOTOS)
        writer.commit()
    return ws


def _cache_source(ws, tmp: Path) -> str:
    """The ImageNet weights when installed, else a random-init Lite0 weights file."""
    import torch

    from core.errors import ImageLabError
    from core.finetune.sources import resolve_source
    from core.models import create_model
    try:
        resolve_source(ws, CACHE_SOURCE)
        return CACHE_SOURCE
    except ImageLabError as exc:
        print(f"  {CACHE_SOURCE} unavailable ({exc}); timing random-init weights",
              file=sys.stderr, flush=True)
    path = tmp / "efficientnet_lite0.pth"
    torch.save(create_model("efficientnet_lite0", 2, 3, CACHE_SIZE).state_dict(), path)
    return str(path)


def _head_only(ws, source: str, cache: bool) -> dict:
    from core.finetune.callback import FineTuning
    from core.finetune.setup import FinetuneConfig, prepare_finetune
    from core.training.config import TrainConfig
    from core.training.loop import end_epoch, train_one_epoch
    from core.training.run import build_trainer
    base = TrainConfig(dataset="cats-dogs", arch="efficientnet_lite0", image_size=CACHE_SIZE,
                       epochs=CACHE_EPOCHS, crop="none", rotation=0.0, color_jitter=0.0,
                       flip=True, seed=0, log_every=10_000)
    cfg = prepare_finetune(ws, base, FinetuneConfig(source, freeze="head")).cfg
    cfg.finetune["feature_cache"] = cache
    t0 = time.perf_counter()
    t = build_trainer(ws, cfg, callbacks=[FineTuning()])
    records = []
    while t.epoch < cfg.epochs:
        train_one_epoch(t)
        records.append(end_epoch(t))
    seconds = time.perf_counter() - t0
    last = records[-1]
    out = {"seconds": round(seconds, 1), "val_accuracy": last["val_accuracy"],
           "val_accuracies": [round(r["val_accuracy"], 4) for r in records],
           "feature_cache": last.get("feature_cache"),
           "feature_seconds": last.get("feature_seconds"), "batch_size": cfg.batch_size,
           "lr": cfg.lr, "num_train": len(t.data.train), "num_val": len(t.data.val)}
    print(f"  head-only, feature cache {'on ' if cache else 'off'}: {seconds:.1f}s, val accuracy "
          f"{out['val_accuracy']:.3f}", file=sys.stderr, flush=True)
    return out


def run_feature_cache() -> list[Result]:
    """Head-only fine-tuning on photos with and without the feature cache (see the module)."""
    name = "head-only fine-tuning on photos: time without / with the feature cache"
    if not PHOTOS.is_dir():
        print(f"  feature cache bench skipped: {PHOTOS} is absent", file=sys.stderr, flush=True)
        return [Result(16, name + f" (skipped: {PHOTOS} absent)", 0.0, "×",
                       detail={"skipped": f"{PHOTOS} absent"})]
    from core.data.tensor_cache import load_cache
    tmp = Path(tempfile.mkdtemp(prefix="bench-feature-cache-"))
    try:
        ws = _photo_workspace(tmp)
        load_cache(ws, "cats-dogs", CACHE_SIZE)          # decoded once, outside the timings
        source = _cache_source(ws, tmp)
        off = _head_only(ws, source, cache=False)
        on = _head_only(ws, source, cache=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = off["seconds"] / max(on["seconds"], 1e-9)
    same = off["val_accuracies"] == on["val_accuracies"]
    detail = {"source": source, "image_size": CACHE_SIZE, "epochs": CACHE_EPOCHS,
              "without_cache": off, "with_cache": on, "same_accuracy_every_epoch": same}
    return [Result(16, f"{name} ({off['seconds']:.0f}s / {on['seconds']:.0f}s; val accuracy "
                       f"{100 * off['val_accuracy']:.1f}% / {100 * on['val_accuracy']:.1f}%)",
                   round(ratio, 2), "×", ">= 5", passed=ratio >= 5 and same, detail=detail)]


if __name__ == "__main__":
    for res in (run_feature_cache() if sys.argv[1:] == ["cache"] else run()):
        print(res)
