"""What fine-tuning buys: the same budget from scratch and from the pretrained start.

``start_comparison`` queues two ordinary runs on the same data with the same architecture,
image size, epochs, batch size and seed: the fine-tuning run and a from-scratch run (at the
engine's own from-scratch learning rate). The pair is recorded in the fine-tuning run's
``compare.json``, so any tab can find it. ``quick_probe`` trains head-only and full
fine-tuning for a few dozen steps in memory and reports validation accuracy, to help
choose before a full run.
"""

from __future__ import annotations

import json
import time

from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.finetune.setup import FinetuneConfig, prepare_finetune, start_finetune
from core.store.run_paths import run_paths
from core.store.workspace import Workspace, atomic_write_text
from core.training import jobs
from core.training.config import TrainConfig
from core.training.loop import evaluate, train_one_epoch
from core.training.run import build_trainer
from core.training.runs import Run, get_run

PROBES = {"head only (linear probe)": {"freeze": "head"},
          "full, discriminative rates": {"freeze": "none", "lr_mults": "discriminative:0.1"}}


def start_comparison(ws: Workspace, cfg: TrainConfig, ft: FinetuneConfig) -> tuple[Run, Run]:
    """Queue the fine-tuning run and a from-scratch run with the same budget; returns both."""
    run = start_finetune(ws, cfg, ft, name="compare: fine-tuned")
    rc = run.config
    scratch_cfg = TrainConfig(**{**cfg.to_dict(), "arch": rc["arch"], "image_size":
                                 rc["image_size"], "epochs": rc["epochs"],
                                 "batch_size": rc["batch_size"], "seed": rc["seed"],
                                 "lr": None, "finetune": None})
    scratch = jobs.start_run(ws, scratch_cfg, name="compare: from scratch")
    atomic_write_text(run.paths.compare, json.dumps(
        {"finetune_run": run.id, "scratch_run": scratch.id, "created_at": time.time()}))
    return get_run(ws, run.id), get_run(ws, scratch.id)


def comparison_of(ws: Workspace, run_id: str) -> dict | None:
    """The pair recorded in the run's ``compare.json``, or None."""
    try:
        return json.loads(run_paths(ws, run_id).compare.read_text())
    except (OSError, ValueError, ImageLabError):
        return None


def latest_comparison(ws: Workspace) -> dict | None:
    """The most recently started comparison of the workspace, or None."""
    found = sorted(ws.runs_dir.glob("*/compare.json"), key=lambda p: p.stat().st_mtime)
    return comparison_of(ws, found[-1].parent.name) if found else None


def quick_probe(ws: Workspace, cfg: TrainConfig, source: str, *, steps: int = 40) -> list[dict]:
    """Head-only vs full fine-tuning, ``steps`` steps each, in memory: validation accuracy."""
    out = []
    for label, opts in PROBES.items():
        prep = prepare_finetune(ws, cfg, FinetuneConfig(source, **opts))
        t0 = time.perf_counter()
        t = build_trainer(ws, prep.cfg, callbacks=[FineTuning()])
        per_epoch = t.steps_per_epoch
        done = 0
        while done < steps:
            t.steps_per_epoch = min(per_epoch, steps - done)
            t.step, t.accum = 0, {}
            train_one_epoch(t)
            done += t.steps_per_epoch
            t.epoch += 1
        out.append({"setting": label, "val_accuracy": evaluate(t)[1], "steps": done,
                    "trainable_groups": [g for g in prep.cfg.finetune["groups"]
                                         if g not in prep.cfg.finetune["frozen"]],
                    "seconds": round(time.perf_counter() - t0, 1)})
    return out
