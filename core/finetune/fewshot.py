"""Few-shot training in memory: restrict a trainer's training split to k images per
class, and measure accuracy on any split of the same dataset (e.g. held-out test).

Used by ``bench/bench_finetune.py`` and by the Fine-tune page's quick probe, so the same
images are compared across starts, freezing choices and seeds.
"""

from __future__ import annotations

import numpy as np
import torch

from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.store.workspace import Workspace
from core.training.data import Split, labelled_images
from core.training.loop import evaluate
from core.training.trainer import Trainer


def few_shot_positions(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k positions per class, drawn with ``seed`` (all of a class when it has fewer)."""
    g = torch.Generator().manual_seed(seed)
    lab = labels.cpu()
    picks = []
    for c in lab.unique().tolist():
        where = (lab == c).nonzero().flatten()
        picks.append(where[torch.randperm(len(where), generator=g)[:k]])
    return torch.cat(picks).sort().values


def restrict_train(t: Trainer, positions: torch.Tensor) -> None:
    """Train on these positions of the training split only."""
    s = t.data.train
    pos = positions.to(torch.int64)
    pixels = s.pixels.index_select(0, pos.to(s.pixels.device)) if s.in_memory else s.pixels
    t.data.train = Split(pixels, s.rows[pos.numpy()], s.labels[pos.to(s.labels.device)],
                         s.in_memory)
    if t.cfg.batch_size > len(pos):
        raise ImageLabError(f"batch size {t.cfg.batch_size} > {len(pos)} training images")
    t.steps_per_epoch = len(pos) // t.cfg.batch_size


def load_split(ws: Workspace, dataset: str, split: str, size: int, device) -> Split:
    """The labelled images of ``split`` from the decoded cache (class indices as training)."""
    cache = load_cache(ws, dataset, size)
    _, rows, _ = labelled_images(ws, dataset)
    where = {int(i): k for k, i in enumerate(cache.image_ids)}
    idx = [where[i] for i, _, s in rows if s == split and i in where]
    labels = [lab for i, lab, s in rows if s == split and i in where]
    if not idx:
        raise ImageLabError(f"dataset {dataset!r} has no labelled {split} images")
    idx = np.asarray(idx, dtype=np.int64)
    pix = torch.from_numpy(np.ascontiguousarray(cache.pixels[idx])).to(device)
    return Split(pix, idx, torch.as_tensor(labels, dtype=torch.int64, device=device), True)


def accuracy_on(t: Trainer, split: Split) -> float:
    """Accuracy of the trainer's current model on ``split``."""
    saved, t.data.val = t.data.val, split
    try:
        return evaluate(t)[1]
    finally:
        t.data.val = saved
