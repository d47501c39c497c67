"""Load a finished run's model and predict on images, exactly as it was trained.

``load_run_model`` reads ``runs/<id>/best.pt`` (or ``last.pt``) with
``weights_only=True``, rebuilds the architecture from the checkpoint's config,
and returns a ``LoadedModel`` in ``eval()`` mode. Its ``preprocessing`` is the
input contract (``core.data.preprocess.Preprocessing``) that the training cache and
the export bundle use too; ``LoadedModel.preprocess`` applies it, and
``predict`` returns probabilities (temperature-scaled when the run has a fitted
temperature in ``calibration.json``).

A ``LoadedModel`` is never mutated after loading, so one instance can be shared
by every session of the dashboard (``st.cache_resource``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.decode import BadImage, decode_image
from core.data.preprocess import Preprocessing
from core.errors import ImageLabError, NotFoundError
from core.store.workspace import Workspace


@dataclass
class LoadedModel:
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
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                outs.append(self.model(x[i:i + batch_size]).float())
        return torch.cat(outs) if outs else torch.zeros(0, len(self.classes))

    def predict(self, images: list[Image.Image], calibrated: bool = True) -> np.ndarray:
        logits = self.logits(self.preprocess(images))
        t = self.temperature if calibrated else 1.0
        return torch.softmax(logits / t, dim=1).numpy()


def checkpoint_path(ws: Workspace, run_id: str, which: str = "best") -> Path:
    folder = ws.runs_dir / run_id
    if not folder.is_dir():
        raise NotFoundError(f"unknown run {run_id!r}; see `python -m core runs list`")
    for name in ((f"{which}.pt",) if which != "best" else ("best.pt", "last.pt")):
        if (folder / name).exists():
            return folder / name
    raise ImageLabError(f"run {run_id} has no checkpoint yet (it has not finished an epoch)")


def load_run_model(ws: Workspace, run_id: str, which: str = "best") -> LoadedModel:
    from core.models import create_model
    from core.training.checkpoint import load_checkpoint

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
                       temperature=read_temperature(ws.runs_dir / run_id),
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
    try:
        t = float(json.loads((run_folder / "calibration.json").read_text())["temperature"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0


def decode_for_prediction(data: bytes) -> Image.Image:
    """Bytes from an upload, a camera or a URL → an upright L/RGB image, or a clear error."""
    try:
        return decode_image(data).image
    except BadImage as exc:
        raise ImageLabError(f"not a usable image: {exc}") from None


@dataclass
class Prediction:
    top: list[tuple[str, float]]     # (class, probability), best first
    probabilities: list[float]
    label: str                       # the best class, or "unknown" below the threshold
    confident: bool
    seconds: float


def predict_one(lm: LoadedModel, img: Image.Image, *, top_k: int = 5,
                threshold: float = 0.0) -> Prediction:
    """One image, on the shortest path: the model's forward plus as few other calls as can be.

    A single small image costs more in call overhead than in arithmetic, and right after a
    forward every call runs on a cold cache (each costs ~3× its tight-loop time here). So
    the pixels come out of PIL already channel-planar (``planar_pixels``: one raw-encoder
    call per band), and a single ``addcmul`` turns the uint8 levels into the normalised
    float32 input (``shift + levels * scale``, the arithmetic of ``to_tensor``, in NCHW
    order so the forward is the very one ``predict`` runs). Softmax and top-k run in plain
    Python for up to 64 classes (numpy beyond). Same numbers as ``predict`` (tested);
    ``bench/bench_demo.py`` measures it.
    """
    t0 = time.perf_counter()
    with torch.inference_mode():        # around the two tensor ops too: lighter dispatch
        logits = lm.model(single_input(lm, img)).tolist()[0]
    probs = _softmax(logits, 1.0 / lm.temperature)
    seconds = time.perf_counter() - t0
    order = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)[:top_k]
    top = [(lm.classes[i], probs[i]) for i in order]
    confident = top[0][1] >= threshold
    return Prediction(top, probs, top[0][0] if confident else "unknown", confident, seconds)


def single_input(lm: LoadedModel, img: Image.Image) -> torch.Tensor:
    """One decoded image → the 1×C×H×W float input of ``predict_one`` (the demo path).

    The contract's resize (``lm.preprocessing.resize``), then the pixels straight out of
    PIL in planar order and one ``addcmul`` with the contract's ``scale``/``shift``. Call
    it under ``torch.inference_mode()`` for the lightest dispatch.
    """
    img = lm.preprocessing.resize(img)
    size = lm.image_size
    levels = torch.frombuffer(bytearray(planar_pixels(img)), dtype=torch.uint8)
    return torch.addcmul(lm._shift, levels.view(1, lm.channels, size, size), lm._scale)


_RAW_ENCODER = getattr(Image.core, "raw_encoder", None)
_BANDS = {"L": ("L",), "RGB": ("R", "G", "B")}


def planar_pixels(img: Image.Image) -> bytes:
    """An image's pixels as bytes, one whole band after another (C×H×W order).

    ``tobytes`` is written for images of any size and interleaves the bands: it allocates
    a 64 KiB output block, loops over ``encode`` and joins the pieces, which for a
    demo-sized image costs more than the copy itself, and the interleaved bytes then
    need a transposing copy. Pillow's raw encoder packs one band per call into exactly
    the bytes asked for, so one call per band of an L or RGB image gives the planar layout
    directly. Anything else (another mode, a lazily loaded image, a Pillow without the
    encoder) takes the general ``numpy`` route; a test checks the two agree.
    """
    bands = _BANDS.get(img.mode)
    count = img.width * img.height
    if _RAW_ENCODER is not None and bands and count:
        try:
            box = (0, 0, img.width, img.height)
            planes = []
            for band in bands:
                encoder = _RAW_ENCODER(img.mode, band)
                encoder.setimage(img.im, box)
                _, status, data = encoder.encode(count)
                if status != 1 or len(data) != count:
                    break
                planes.append(data)
            else:
                return planes[0] if len(planes) == 1 else b"".join(planes)
        except Exception:       # noqa: BLE001 - the general path below is the reference
            pass
    pixels = np.asarray(img)
    return pixels.tobytes() if pixels.ndim == 2 else pixels.transpose(2, 0, 1).tobytes()


def _softmax(logits: list[float], inv_temperature: float) -> list[float]:
    if len(logits) > 64:
        z = np.asarray(logits) * inv_temperature
        e = np.exp(z - z.max())
        return (e / e.sum()).tolist()
    m = max(logits)
    e = [math.exp((v - m) * inv_temperature) for v in logits]
    s = sum(e)
    return [v / s for v in e]
