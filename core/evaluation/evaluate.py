"""Evaluate a run on a split of its own dataset, or of another with the same class names.

``evaluate_run`` reads pixels from the decoded cache at the run's image size,
batches inference, computes the full report (``metrics.classification_report``)
and stores it in ``runs/<id>/eval/<dataset>-<split>.json`` with the per-image
predictions beside it (``.npz``). A stored result is reused while the dataset's
label version is unchanged.

On the run's own dataset it also fits a temperature on the validation split
(``runs/<id>/calibration.json``). (The held-out predictions the label review ranks,
``predictions_val.npz``, are written by the trainer when a run finishes.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from core.data.catalog import get_dataset_id, label_version
from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.evaluation.metrics import classification_report, fit_temperature, reliability, softmax
from core.store.run_paths import run_paths
from core.store.workspace import Workspace, atomic_write_text
from core.training.run_model import LoadedModel, load_run_model, run_dataset

SPLIT_CHOICES = ("test", "val", "train", "all")
BATCH_SIZE = 256


def labelled_rows(ws: Workspace, dataset: str, split: str) -> tuple[np.ndarray, list[str], int]:
    """(image ids, their class names, label version) for labelled, non-excluded images."""
    ds_id = get_dataset_id(ws, dataset)
    where = "" if split == "all" else "AND i.split = ?"
    params = (ds_id,) if split == "all" else (ds_id, split)
    with ws.db() as conn:
        rows = conn.execute(
            f"SELECT i.id, c.name FROM images i JOIN classes c ON c.id = i.class_id "
            f"WHERE i.dataset_id = ? AND i.excluded = 0 {where} ORDER BY i.id", params).fetchall()
        version = label_version(conn, ds_id)
    return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], version


def split_counts(ws: Workspace, dataset: str) -> dict[str, int]:
    """Labelled, non-excluded images of ``dataset`` per split: ``test``, ``val``, ``train``
    and ``all`` (what ``evaluate_run`` would evaluate)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        rows = conn.execute("SELECT split, COUNT(*) FROM images WHERE dataset_id = ? AND "
                            "excluded = 0 AND class_id IS NOT NULL GROUP BY split",
                            (ds_id,)).fetchall()
    counts = {s: 0 for s in SPLIT_CHOICES}
    for split, n in rows:
        counts[split] = int(n)
    counts["all"] = sum(counts[s] for s in ("test", "val", "train"))
    return counts


def opening_split(counts: dict[str, int]) -> str:
    """The split to evaluate on first: ``test`` if it has images, else ``val``, else
    ``train`` (``all`` when none has any), so the first thing shown is a result."""
    return next((s for s in ("test", "val", "train") if counts.get(s)), "all")


def match_classes(model_classes: list[str], data_classes: list[str], dataset: str) -> np.ndarray:
    """Map each image's class name to the model's class index, by name."""
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = sorted(set(data_classes) - set(index))
    if unknown:
        raise ImageLabError(
            f"dataset {dataset!r} has classes the model was not trained on: {', '.join(unknown)}; "
            f"the model knows {', '.join(model_classes)}. Evaluate on a dataset with the same "
            "class names, or relabel/exclude those images")
    return np.array([index[c] for c in data_classes], dtype=np.int64)


def run_logits(ws: Workspace, lm: LoadedModel, dataset: str, image_ids: np.ndarray,
               batch_size: int = BATCH_SIZE, progress=None) -> np.ndarray:
    """Logits for ``image_ids`` of ``dataset``, read from the cache in batches."""
    out = np.zeros((len(image_ids), len(lm.classes)), dtype=np.float32)
    model = lm.model
    with torch.inference_mode():
        for start, x in cache_inputs(ws, lm, dataset, image_ids, batch_size):
            out[start:start + len(x)] = model(x).float().numpy()
            if progress:
                progress(min(start + batch_size, len(out)), len(out), "evaluating")
    return out


def cache_inputs(ws: Workspace, lm: LoadedModel, dataset: str, image_ids: np.ndarray,
                 batch_size: int = BATCH_SIZE) -> Iterator[tuple[int, torch.Tensor]]:
    """(offset, float input batch) for ``image_ids`` of ``dataset``: the evaluation's inputs.

    The pixels come from the decoded-pixel cache at the model's size (resized there by the
    preprocessing contract) and are scaled by the model's ``to_tensor``.
    """
    cache = load_cache(ws, dataset, lm.image_size)
    if cache.channels != lm.channels:
        raise ImageLabError(f"dataset {dataset!r} has {cache.channels}-channel images but the "
                            f"model takes {lm.channels}")
    position = {int(i): k for k, i in enumerate(cache.image_ids)}
    rows = np.array([position[int(i)] for i in image_ids], dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        # contiguous slices read fastest from the memmap; ids are sorted, so usually one slice
        block = np.asarray(cache.pixels[lo:hi])[idx - lo]
        yield start, lm.to_tensor(block)


def evaluate_run(ws: Workspace, run_id: str, dataset: str | None = None, split: str = "test", *,
                 refresh: bool = False, progress=None) -> dict:
    """Evaluate run ``run_id`` on ``split`` of ``dataset`` (default: its own); returns the report.

    The report is ``metrics.classification_report`` (per-class precision/recall/F1, confusion
    matrix, top-k accuracy, ROC/PR, calibration) plus ``run_id``, ``dataset``, ``split``,
    ``label_version``, ``checkpoint`` (``best.pt``, the default everywhere, else ``last.pt``)
    with ``checkpoint_epoch`` (the epoch it was saved at, from 1), ``temperature``, ``seconds``
    and ``images_per_second``.
    It is stored as ``eval/<dataset>-<split>.json`` with per-image probabilities and losses in
    an ``.npz`` beside it; a stored report is returned as is while the label version and the
    checkpoint are unchanged, unless ``refresh``. On the run's own dataset a temperature is
    fitted first if missing. ``progress(done, total, message)`` reports batches.

    Raises ``ImageLabError`` for an unknown split, a deleted dataset, a split with no labelled
    images, or class names that do not match the run's."""
    if split not in SPLIT_CHOICES:
        raise ImageLabError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    lm = load_run_model(ws, run_id)
    own_dataset = run_dataset(ws, run_id)
    dataset = dataset or own_dataset
    if dataset is None:
        raise ImageLabError(f"run {run_id}'s dataset no longer exists; pass --dataset")
    ids, names, version = labelled_rows(ws, dataset, split)
    if len(ids) == 0:
        raise ImageLabError(f"dataset {dataset!r} has no labelled images in split {split!r}")
    paths = run_paths(ws, run_id)
    stored = _read_json(paths.eval_report(dataset, split))
    ckpt_mtime = lm.checkpoint.stat().st_mtime
    if (not refresh and stored and stored.get("label_version") == version
            and stored.get("checkpoint_mtime") == ckpt_mtime):
        return stored
    y = match_classes(lm.classes, names, dataset)
    if dataset == own_dataset:
        ensure_calibration(ws, lm, dataset)
    t0 = time.perf_counter()
    logits = run_logits(ws, lm, dataset, ids, progress=progress)
    seconds = time.perf_counter() - t0
    probs = softmax(logits.astype(np.float64), lm.temperature)
    report = classification_report(y, probs, lm.classes)
    report["calibration_uncalibrated"] = reliability(y, softmax(logits.astype(np.float64)))
    losses = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="none")
    report.update({
        "run_id": run_id, "dataset": dataset, "split": split, "label_version": version,
        "checkpoint": lm.checkpoint.name, "checkpoint_epoch": lm.meta.get("epoch"),
        "checkpoint_mtime": ckpt_mtime,
        "temperature": lm.temperature, "seconds": round(seconds, 3),
        "images_per_second": round(len(ids) / seconds, 1) if seconds > 0 else None,
        "evaluated_at": time.time(),
    })
    paths.eval_dir.mkdir(parents=True, exist_ok=True)
    _save_npz(paths.eval_report(dataset, split, ".npz"), image_ids=ids, y_true=y, logits=logits, probs=probs,
              loss=losses.numpy(), class_names=np.array(lm.classes))
    atomic_write_text(paths.eval_report(dataset, split), json.dumps(report))
    return report


def ensure_calibration(ws: Workspace, lm: LoadedModel, dataset: str) -> float:
    """Fit the temperature on the run's validation split once; saved with the run."""
    path = run_paths(ws, lm.run_id).calibration
    stored = _read_json(path)
    if stored and stored.get("checkpoint_mtime") == lm.checkpoint.stat().st_mtime:
        lm.temperature = float(stored["temperature"])
        return lm.temperature
    ids, names, version = labelled_rows(ws, dataset, "val")
    if len(ids) < 10:
        lm.temperature = 1.0
        return 1.0
    y = match_classes(lm.classes, names, dataset)
    logits = run_logits(ws, lm, dataset, ids).astype(np.float64)
    t = fit_temperature(logits, y)
    before = reliability(y, softmax(logits))["ece"]
    after = reliability(y, softmax(logits, t))["ece"]
    atomic_write_text(path, json.dumps({
        "temperature": t, "fitted_on": f"{dataset}/val", "num_images": int(len(ids)),
        "ece_before": before, "ece_after": after, "label_version": version,
        "checkpoint_mtime": lm.checkpoint.stat().st_mtime}))
    lm.temperature = t
    return t


def stored_predictions(ws: Workspace, run_id: str, dataset: str, split: str) -> dict | None:
    """The per-image arrays saved by ``evaluate_run`` (None when not evaluated yet)."""
    path = run_paths(ws, run_id).eval_report(dataset, split, ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
