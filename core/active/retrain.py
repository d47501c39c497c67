"""Retraining as labels come in: how many labels are new since a run, and a new run with them.

"After every N new labels the queue can retrain in the background, as a normal run and not a
hidden one, and re-rank." ``labels_since`` counts what a run has not seen; ``start_retrain``
starts an ordinary run with the same options as that run, on the current labels, through the
same job queue as the Train and Fine-tune pages (``core.training.jobs``,
``core.finetune.setup``): it is listed, can be stopped, and its result is a run like any
other. The queue re-ranks with it once it is the dataset's best finished run (or when asked
for it by id).
"""

from __future__ import annotations

from core.errors import ImageLabError
from core.finetune.setup import FinetuneConfig, start_finetune
from core.labels.history import labels_at_version
from core.labels.selection import ImageFilter, matching_labels
from core.store.workspace import Workspace
from core.training.config import TrainConfig
from core.training.jobs import start_run
from core.training.runs import get_run, load_run_config

RETRAIN_EVERY = 50   # the Label page's default: retrain after this many new labels


def labels_since(ws: Workspace, dataset: str, run_id: str) -> int:
    """How many images of ``dataset`` have a label now that run ``run_id`` did not train on:
    labelled since (or imported with a label since) the label version the run pinned, or
    relabelled since. An image unlabelled again does not count; an edit undone since does
    not count either."""
    run = get_run(ws, run_id)
    if run.dataset != dataset:
        raise ImageLabError(f"run {run_id} was trained on {run.dataset!r}, not {dataset!r}")
    now = matching_labels(ws, dataset, ImageFilter())
    then = labels_at_version(ws, dataset, run.label_version) if run.label_version else {}
    return sum(1 for image_id, label in now.items()
               if label is not None and then.get(image_id) != label)


def retrain_config(ws: Workspace, run_id: str) -> tuple[TrainConfig, FinetuneConfig | None]:
    """The options of run ``run_id`` for a new run on the current labels: its stored config
    with the label version left open (and, for a fine-tuning run, its fine-tuning options)."""
    run = get_run(ws, run_id)
    cfg = load_run_config(run.folder)
    cfg.label_version = None          # the new run pins the labels as they are now
    ft_opts = cfg.finetune
    cfg.finetune = None
    if run.kind != "finetune" or not ft_opts:
        return cfg, None
    ft = FinetuneConfig(source=ft_opts["source"], freeze=ft_opts.get("freeze", "auto"),
                        unfreeze_after=int(ft_opts.get("unfreeze_after", 0)),
                        lr_mults=ft_opts.get("lr_mults", ""),
                        feature_cache=bool(ft_opts.get("feature_cache", True)))
    return cfg, ft


def start_retrain(ws: Workspace, dataset: str, based_on_run: str) -> str:
    """Start a normal background run of ``dataset`` with the options of ``based_on_run`` on
    the current labels; returns the new run's id. It is queued like any run (and starts at
    once when its device is idle)."""
    run = get_run(ws, based_on_run)
    if run.dataset != dataset:
        raise ImageLabError(f"run {based_on_run} was trained on {run.dataset!r}, not {dataset!r}")
    cfg, ft = retrain_config(ws, based_on_run)
    if ft is not None:
        return start_finetune(ws, cfg, ft).id
    return start_run(ws, cfg).id
