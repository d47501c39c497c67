"""The fast data path: the uint8 tensor cache, labels from the database, batches on the device.

- Pixels come from ``core.data.tensor_cache`` (decoded once per size); labels and splits
  come from the database (they change), joined on image ids.
- Small datasets (< 1 GiB decoded) are held whole on the training device, like the CIFAR
  speed records do; larger ones are read as index slices of the memory-mapped cache.
- Each epoch's order is a permutation seeded by (seed, epoch), so a resumed run sees the
  same batches; the weighted sampler draws with replacement from the same kind of seed.
- ``BatchAugment`` (``core.training.augment``, re-exported here) augments whole batches
  per sample with tensor ops on the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from core.data.catalog import get_dataset_id, label_version
from core.data.tensor_cache import dataset_channels, load_cache, native_size
from core.errors import ImageLabError
from core.labels.history import labels_at_version
from core.store.workspace import Workspace
from core.training.augment import BatchAugment

IN_MEMORY_LIMIT = 1 << 30

__all__ = ["BatchAugment", "DatasetFacts", "Split", "TrainingData", "class_weights",
           "dataset_facts", "epoch_order", "labelled_images", "load_training_data",
           "sample_weights"]


@dataclass
class DatasetFacts:
    """What the defaults and the checks need, read from the database only."""
    dataset: str
    dataset_id: int
    native_size: int
    channels: int
    class_names: list[str]
    train_counts: list[int]
    num_val: int
    label_version: int

    @property
    def num_train(self) -> int:
        """Labelled training images, all classes together."""
        return sum(self.train_counts)

    @property
    def imbalance(self) -> float:
        """Largest training class count over the smallest (1.0: balanced)."""
        return max(self.train_counts) / max(1, min(self.train_counts))


def _classes(conn, ds_id: int):
    return conn.execute("SELECT id, name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
                        "ORDER BY position, name", (ds_id,)).fetchall()


def labelled_images(ws: Workspace, dataset: str, version: int | None = None
                    ) -> tuple[list[str], list[tuple[int, int, str]], int]:
    """(class names, [(image id, class index, split)], label version) for training.

    ``version=None`` takes the current labels; a past label version takes the labels as
    they were then (``core.labels.history.labels_at_version``). Excluded images are left out.
    """
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        classes = _classes(conn, ds_id)
        current = label_version(conn, ds_id)
        images = conn.execute("SELECT id, class_id, split FROM images WHERE dataset_id = ? "
                              "AND excluded = 0 ORDER BY id", (ds_id,)).fetchall()
    names = [c["name"] for c in classes]
    if version is None or version == current:
        pos = {c["id"]: k for k, c in enumerate(classes)}
        rows = [(int(r["id"]), pos[r["class_id"]], r["split"]) for r in images
                if r["class_id"] in pos]
        return names, rows, current
    if not 0 <= version <= current:
        raise ImageLabError(f"dataset {dataset!r} has no label version {version} "
                            f"(the current one is {current})")
    at = labels_at_version(ws, dataset, version)
    present = {n for n in at.values() if n is not None}
    names = [n for n in names if n in present] + sorted(present - set(names))
    pos = {n: k for k, n in enumerate(names)}
    rows = [(int(r["id"]), pos[at[int(r["id"])]], r["split"]) for r in images
            if at.get(int(r["id"])) is not None]
    return names, rows, version


def dataset_facts(ws: Workspace, dataset: str, version: int | None = None) -> DatasetFacts:
    """Counts per class and split, with a clear error for data that cannot be trained on."""
    ds_id = get_dataset_id(ws, dataset)
    names, rows, version = labelled_images(ws, dataset, version)
    train = [0] * len(names)
    total = [0] * len(names)
    num_val = 0
    for _, c, split in rows:
        total[c] += 1
        if split == "train":
            train[c] += 1
        elif split == "val":
            num_val += 1
    if len(names) < 2:
        raise ImageLabError(
            f"dataset {dataset!r} has {len(names)} class{'es' if len(names) != 1 else ''} "
            f"({', '.join(names) or 'none'}); a classifier needs at least two — add a class "
            "and label some images on the Label page")
    empty = [n for n, t in zip(names, total) if t == 0]
    if empty:
        raise ImageLabError(f"class{'es' if len(empty) > 1 else ''} {', '.join(map(repr, empty))} "
                            f"of dataset {dataset!r} ha{'ve' if len(empty) > 1 else 's'} no "
                            "labelled images; label some images or delete the class")
    no_train = [n for n, t in zip(names, train) if t == 0]
    if no_train:
        raise ImageLabError(f"class{'es' if len(no_train) > 1 else ''} "
                            f"{', '.join(map(repr, no_train))} of dataset {dataset!r} "
                            "ha{} no images in the train split".format(
                                "ve" if len(no_train) > 1 else "s"))
    if num_val == 0:
        raise ImageLabError(f"dataset {dataset!r} has no labelled validation images; "
                            "re-split it so the val split has some")
    channels = dataset_channels(ws, ds_id)
    return DatasetFacts(dataset, ds_id, native_size(ws, ds_id), channels, names, train,
                        num_val, version)


@dataclass
class Split:
    """One split's images and labels, on the training device or read from the cache's memmap."""
    pixels: object             # torch uint8 (N,C,H,W) on the device, or a numpy memmap
    rows: np.ndarray           # rows of ``pixels`` in this split (for the memmap case)
    labels: torch.Tensor       # int64 on the device
    in_memory: bool
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # database ids

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """uint8 images ``idx`` (positions within the split) on ``device``."""
        if self.in_memory:
            return self.pixels.index_select(0, idx.to(self.pixels.device))
        rows = self.rows[idx.cpu().numpy()]
        order = np.argsort(rows)            # sorted reads are faster on a memmap
        data = np.empty((len(rows),) + self.pixels.shape[1:], np.uint8)
        data[order] = self.pixels[rows[order]]
        return torch.from_numpy(data).to(device, non_blocking=True)


@dataclass
class TrainingData:
    """The train and validation splits of one run, with the class names, input size and
    normalisation."""
    train: Split
    val: Split
    class_names: list[str]
    channels: int
    size: int
    mean: list[float]
    std: list[float]
    fingerprint: str           # images, labels and splits used: a resume must match it
    label_version: int
    train_counts: list[int] = field(default_factory=list)


def load_training_data(ws: Workspace, dataset: str, size: int, device: torch.device,
                       progress=None, label_version: int | None = None) -> TrainingData:
    """Load a dataset's labelled train and val images at ``size`` px onto ``device``.

    Builds the tensor cache if needed (``progress`` reports it); keeps the pixels on the device
    when the cache fits in ``IN_MEMORY_LIMIT`` bytes, else reads batches from the memmap. The
    fingerprint covers images, labels and splits, so a resume can check nothing changed;
    mean and std are per channel, of pixels in [0, 1], from about 10,000 training images."""
    facts = dataset_facts(ws, dataset, label_version)
    cache = load_cache(ws, dataset, size, progress=progress)
    _, rows, _ = labelled_images(ws, dataset, label_version)
    where = {int(i): k for k, i in enumerate(cache.image_ids)}
    h = hashlib.sha1(("|".join(facts.class_names) + f"@{size}").encode())
    split_rows = {"train": ([], [], []), "val": ([], [], [])}
    for image_id, label, split in rows:
        if split in split_rows and image_id in where:
            split_rows[split][0].append(where[image_id])
            split_rows[split][1].append(label)
            split_rows[split][2].append(image_id)
            h.update(f"{image_id}:{label}:{split};".encode())
    in_memory = cache.pixels.nbytes <= IN_MEMORY_LIMIT
    splits = {}
    for name, (idx, labels, ids) in split_rows.items():
        idx = np.asarray(idx, dtype=np.int64)
        lab = torch.as_tensor(labels, dtype=torch.int64, device=device)
        ids = np.asarray(ids, dtype=np.int64)
        if in_memory:
            pix = torch.from_numpy(np.ascontiguousarray(cache.pixels[idx])).to(device)
            splits[name] = Split(pix, idx, lab, True, ids)
        else:
            splits[name] = Split(cache.pixels, idx, lab, False, ids)
    mean, std = _channel_stats(cache.pixels, split_rows["train"][0])
    return TrainingData(splits["train"], splits["val"], facts.class_names, cache.channels, size,
                        mean, std, h.hexdigest(), facts.label_version, facts.train_counts)


def _channel_stats(pixels, rows: list[int], limit: int = 10_000) -> tuple[list[float], list[float]]:
    rows = np.sort(np.asarray(rows[:: max(1, len(rows) // limit)], dtype=np.int64))
    x = torch.from_numpy(np.ascontiguousarray(pixels[rows])).float().div_(255)
    mean = x.mean((0, 2, 3))
    std = x.std((0, 2, 3)).clamp_min(1e-3)
    return [round(float(v), 5) for v in mean], [round(float(v), 5) for v in std]


def epoch_order(n: int, epoch: int, seed: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The epoch's sample order (CPU int64): a permutation, or weighted draws with replacement."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is None:
        return torch.randperm(n, generator=g)
    return torch.multinomial(weights, n, replacement=True, generator=g)


def sample_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights that make every class equally likely (weighted sampler)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp_min(1).double()
    return (1.0 / counts)[labels.cpu()]


def class_weights(counts: list[int]) -> torch.Tensor:
    """Loss weights inversely proportional to class frequency, averaging 1."""
    c = torch.tensor(counts, dtype=torch.float32).clamp_min(1)
    w = c.sum() / (len(counts) * c)
    return w / w.mean()
