"""End-to-end parity from files: the extracted bundle, run as a user runs it, against the app.

``check_bundle`` unpacks an export's bundle into a fresh folder and runs
``python predict.py --json FILE...`` there in a subprocess (no ``PYTHONPATH``, no
workspace: only what the zip holds), on the stored original files of the run's
validation split (``split_files``: all of it up to ``MAX_IMAGES``, evenly spaced). The
same files go through the app's own batch prediction (``core.inference.batch.predict_paths``:
decode, the contract's resize, ``LoadedModel.predict`` with the run's temperature). The
figures: top-1 agreement, the largest probability difference, and both accuracies on the
split's labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from core.errors import ImageLabError
from core.inference.batch import predict_paths
from core.store.workspace import Workspace
from core.training.run_model import LoadedModel

MAX_IMAGES = 2000
SPLITS = ("val", "test", "train")      # the validation split; the next one if it is empty
MAX_ARGV_CHARS = 100_000               # paths per predict.py call, well under ARG_MAX
TIMEOUT_S = 1800


def split_files(ws: Workspace, dataset: str, split: str = "val", *,
                cap: int = MAX_IMAGES) -> tuple[str, list[Path], list[str]]:
    """(split used, stored original files, their labels) of ``dataset``'s labelled,
    non-excluded images of ``split`` (or the next of ``SPLITS`` with images), at most
    ``cap`` of them, evenly spaced by image id."""
    order = [split] + [s for s in SPLITS if s != split]
    for name in order:
        with ws.db() as conn:
            rows = conn.execute(
                "SELECT i.path, c.name FROM images i JOIN classes c ON c.id = i.class_id "
                "JOIN datasets d ON d.id = i.dataset_id WHERE d.name = ? AND i.split = ? "
                "AND i.excluded = 0 ORDER BY i.id", (dataset, name)).fetchall()
        if rows:
            pick = np.linspace(0, len(rows) - 1, min(cap, len(rows))).round().astype(int)
            pick = sorted(set(pick.tolist()))
            return name, [ws.resolve(rows[k][0]) for k in pick], [rows[k][1] for k in pick]
    raise ImageLabError(f"dataset {dataset!r} has no labelled images to check the export on")


def bundle_env() -> dict:
    """The environment a user's shell would give ``predict.py``: no project on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMAGELAB_HOME")}


def run_bundle(bundle: Path, paths: list[Path], classes: list[str],
               folder: Path) -> dict[str, np.ndarray]:
    """Unpack ``bundle`` into ``folder`` and run ``python predict.py --json`` there on
    ``paths`` (as few calls as the command-line length allows); {path: probabilities in
    ``classes`` order} for every image it read."""
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(folder)
    out: dict[str, np.ndarray] = {}
    for chunk in _argv_chunks([str(p) for p in paths]):
        proc = subprocess.run([sys.executable, "predict.py", "--json", *chunk], cwd=folder,
                              env=bundle_env(), capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
        if proc.returncode not in (0, 1):
            raise ImageLabError(f"the bundle's predict.py failed (exit {proc.returncode}): "
                                f"{proc.stderr.strip()[-500:]}")
        for line in proc.stdout.splitlines():
            item = json.loads(line)
            out[item["path"]] = np.array([item["probabilities"][c] for c in classes])
    return out


def _argv_chunks(args: list[str]):
    chunk, size = [], 0
    for a in args:
        if chunk and size + len(a) + 1 > MAX_ARGV_CHARS:
            yield chunk
            chunk, size = [], 0
        chunk.append(a)
        size += len(a) + 1
    if chunk:
        yield chunk


def check_bundle(ws: Workspace, lm: LoadedModel, bundle: Path, dataset: str, *,
                 split: str = "val", cap: int = MAX_IMAGES) -> dict:
    """The bundle against the app on real files of ``dataset``'s ``split``; the figures
    (``split``, ``images``, ``top1_agreement``, ``max_prob_diff``, ``accuracy_app``,
    ``accuracy_export``, ``unreadable``, ``seconds``)."""
    t0 = time.perf_counter()
    used, paths, labels = split_files(ws, dataset, split, cap=cap)
    rows = predict_paths(lm, paths)
    app = {r["path"]: np.array([r[f"p_{c}"] for c in lm.classes]) for r in rows
           if not r["error"]}
    with tempfile.TemporaryDirectory(prefix="bundle-", dir=ws.tmp_dir) as tmp:
        exported = run_bundle(Path(bundle), paths, lm.classes, Path(tmp))
    keys = [str(p) for p in paths]
    both = [k for k in keys if k in app and k in exported]
    kept = set(both)
    if not both:
        raise ImageLabError(f"no image of the {used} split could be predicted by both the app "
                            "and the bundle")
    a = np.stack([app[k] for k in both])
    e = np.stack([exported[k] for k in both])
    index = {c: i for i, c in enumerate(lm.classes)}
    truth = np.array([index.get(lab, -1) for k, lab in zip(keys, labels) if k in kept])
    return {"split": used, "images": len(both), "unreadable": len(keys) - len(both),
            "top1_agreement": float(np.mean(a.argmax(1) == e.argmax(1))),
            "max_prob_diff": float(np.max(np.abs(a - e))),
            "accuracy_app": float(np.mean(a.argmax(1) == truth)),
            "accuracy_export": float(np.mean(e.argmax(1) == truth)),
            "seconds": round(time.perf_counter() - t0, 2)}
