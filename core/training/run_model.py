"""A finished run's model, loaded for use: ``load_run_model`` and ``LoadedModel``.

``load_run_model`` reads ``runs/<id>/best.pt`` (or ``last.pt``) with
``weights_only=True``, rebuilds the architecture from the checkpoint's config,
and returns a ``LoadedModel`` in ``eval()`` mode. Its ``preprocessing`` is the
input contract (``core.data.preprocess.Preprocessing``) that the training cache and
the export bundle use too; ``LoadedModel.preprocess`` applies it, and
``predict`` returns probabilities (temperature-scaled when the run has a fitted
temperature in ``calibration.json``).

It sits in the ``training`` layer, beside the checkpoint format it reads, so that
both ``core.evaluation`` and ``core.inference`` (above it) import it downward;
``core.inference.predictor`` re-exports it. A ``LoadedModel`` is never mutated after
loading, so one instance can be shared by every session of the dashboard
(``st.cache_resource``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.preprocess import Preprocessing
from core.errors import ImageLabError, NotFoundError
from core.models import create_model
from core.store.run_paths import DEFAULT_CHECKPOINT, RunPaths, checked_run_id, run_paths
from core.store.workspace import Workspace
from core.training.checkpoint import load_checkpoint


@dataclass
class LoadedModel:
    """A run's model in ``eval()`` mode with everything needed to feed it and name its outputs."""
    model: torch.nn.Module
    run_id: str
    arch: str
    classes: list[str]
    image_size: int
    channels: int
    mean: list[float]
    std: list[float]
    normalize: bool
    checkpoint: Path
    temperature: float = 1.0
    num_parameters: int = 0
    meta: dict = field(default_factory=dict)
    # The input contract (resize, channels, mean/std) shared with the cache and bundles.
    preprocessing: Preprocessing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.preprocessing = Preprocessing(
            self.image_size, self.channels,
            self.mean if self.normalize else None, self.std if self.normalize else None)
        # (x / 255 - mean) / std  ==  x * scale + shift: the contract's float32 constants
        self._scale = torch.from_numpy(self.preprocessing.scale.copy()).view(1, -1, 1, 1)
        self._shift = torch.from_numpy(self.preprocessing.shift.copy()).view(1, -1, 1, 1)

    def to_tensor(self, arrays: np.ndarray) -> torch.Tensor:
        """uint8 N×C×H×W → the float tensor the model takes."""
        x = torch.from_numpy(np.array(arrays, dtype=np.uint8, copy=True, order="C")).float()
        return x.mul_(self._scale).add_(self._shift)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """Decoded images → the model's float input, by the preprocessing contract."""
        return self.to_tensor(np.stack([self.preprocessing.to_array(img) for img in images]))

    def logits(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Raw logits (float32, N×classes) for model inputs ``x``, in batches of ``batch_size``,
        without gradients."""
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                outs.append(self.model(x[i:i + batch_size]).float())
        return torch.cat(outs) if outs else torch.zeros(0, len(self.classes))

    def predict(self, images: list[Image.Image], calibrated: bool = True) -> np.ndarray:
        """Class probabilities (N×classes numpy) for decoded images; ``calibrated`` divides the
        logits by the run's temperature."""
        logits = self.logits(self.preprocess(images))
        t = self.temperature if calibrated else 1.0
        return torch.softmax(logits / t, dim=1).numpy()


def checkpoint_path(ws: Workspace, run_id: str, which: str = DEFAULT_CHECKPOINT) -> Path:
    """The run's ``which``.pt file; ``best`` falls back to ``last.pt``.

    ``run_id`` must be a run of ``ws``'s runs table (``checked_run_id``), so the file is always
    under ``runs/``: a malformed id (``../x``) raises ``ImageLabError``, an unknown one
    ``NotFoundError``."""
    paths = run_paths(ws, checked_run_id(run_id, ws))
    if not paths.folder.is_dir():
        raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    for path in (paths.checkpoint(which),) if which != "best" else (paths.best, paths.last):
        if path.exists():
            return path
    raise ImageLabError(f"run {run_id} has no checkpoint yet (it has not finished an epoch)")


def load_run_model(ws: Workspace, run_id: str, which: str = DEFAULT_CHECKPOINT) -> LoadedModel:
    """A finished run's model from ``best.pt`` (else ``last.pt``), ready to predict.

    Raises ``NotFoundError`` for an unknown run (not in the runs table), ``ImageLabError`` for a
    malformed run id (see ``checked_run_id``) and for a run with no
    checkpoint yet, a file that is not an ImageLab checkpoint, or weights that do not fit
    (or cannot run on) the architecture and image size the checkpoint declares.
    """
    path = checkpoint_path(ws, run_id, which)
    ckpt = load_checkpoint(path)
    try:
        cfg = ckpt["config"]
        classes = list(ckpt["class_names"])
        mean, std = list(ckpt["mean"]), list(ckpt["std"])
        state = ckpt["model"]
    except (KeyError, TypeError):
        raise ImageLabError(f"{path} is not an ImageLab training checkpoint") from None
    channels = len(mean)
    model = create_model(cfg["arch"], len(classes), channels, int(cfg["image_size"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ImageLabError(f"checkpoint {path} does not match its architecture: {exc}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        _warm_up(model, channels, int(cfg["image_size"]))
    except RuntimeError as exc:
        raise ImageLabError(f"checkpoint {path} cannot run on the {channels}×{cfg['image_size']}"
                            f"×{cfg['image_size']} images it declares: {exc}") from None
    return LoadedModel(model, run_id, cfg["arch"], classes, int(cfg["image_size"]), channels,
                       mean, std, bool(cfg.get("normalize", True)), path,
                       temperature=read_temperature(path.parent),
                       num_parameters=sum(p.numel() for p in model.parameters()),
                       meta={"epoch": ckpt.get("epoch"), "label_version": ckpt.get("label_version"),
                             "best_val_accuracy": ckpt.get("best_val_accuracy")})


def _warm_up(model: torch.nn.Module, channels: int, size: int) -> None:
    """One forward on a blank image, so that the first prediction a user sees (and its
    latency on the Demo page, and the service's first request) runs at its steady speed:
    a model's first CPU forward sets up its kernels and costs 10-50× a later one."""
    with torch.inference_mode():
        model(torch.zeros(1, channels, size, size))


def read_temperature(run_folder: Path) -> float:
    """The run's fitted softmax temperature from ``calibration.json`` (1.0 if none)."""
    try:
        t = float(json.loads(RunPaths(run_folder).calibration.read_text())["temperature"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0


def run_dataset(ws: Workspace, run_id: str) -> str | None:
    """The name of the dataset a run was trained on (None if the run or dataset is gone)."""
    with ws.db() as conn:
        row = conn.execute("SELECT d.name FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
                           "WHERE r.id = ?", (run_id,)).fetchone()
    return row[0] if row else None
