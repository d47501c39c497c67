"""Train/val/test split assignment for imported images.

``assign_splits`` gives every image without a split one, seeded and stratified by
class; ``check_split`` refuses a split name that is not one of ``SPLITS``.
"""

from __future__ import annotations

import numpy as np

from core.data.catalog import SPLITS
from core.errors import ImageLabError

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def check_split(split: str | None) -> None:
    """Accept ``None`` (assigned later) or one of ``SPLITS``; raise ``ImageLabError`` otherwise."""
    if split is not None and split not in SPLITS:
        raise ImageLabError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


def assign_splits(labels: list[str | None], given: list[str | None],
                  fractions: dict[str, float], seed: int) -> list[str]:
    """Seeded, stratified split for rows without one; given splits are kept.

    Each class (and the unlabelled group) is shuffled with the seed and cut by
    ``fractions``; a class of 3 or more images gets at least one val and one
    test image, so every split sees every class. Returns one split name per row,
    in the order of ``labels``.
    """
    out = list(given)
    groups: dict[str, list[int]] = {}
    for i, (label, split) in enumerate(zip(labels, given)):
        if split is None:
            groups.setdefault("" if label is None else "#" + label, []).append(i)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n = len(idx)
        n_val = int(round(n * fractions.get("val", 0.0)))
        n_test = int(round(n * fractions.get("test", 0.0)))
        if n >= 3:
            n_val = max(n_val, 1 if fractions.get("val", 0) > 0 else 0)
            n_test = max(n_test, 1 if fractions.get("test", 0) > 0 else 0)
        for j, i in enumerate(idx):
            out[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    return out  # type: ignore[return-value]
