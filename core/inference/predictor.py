"""Predict on images with a finished run's model, exactly as it was trained.

The model comes from ``load_run_model`` (``core.training.run_model``, re-exported
here with ``LoadedModel`` and ``checkpoint_path``): its
``preprocessing`` is the input contract (``core.data.preprocess.Preprocessing``)
that the training cache and the export bundle use too. ``predict_one`` is the
shortest path for one image (the Demo and the service); ``decode_for_prediction``
turns uploaded bytes into an image or a clear error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from core.data.decode import BadImage, decode_image
from core.errors import ImageLabError
from core.training.run_model import LoadedModel, checkpoint_path, load_run_model

# The run-model loader lives in core.training.run_model (below evaluation and inference);
# it is re-exported here because the demo path, the service and the UI start from here.
__all__ = ["LoadedModel", "checkpoint_path", "load_run_model",
           "decode_for_prediction", "Prediction", "predict_one", "single_input", "planar_pixels"]


def decode_for_prediction(data: bytes) -> Image.Image:
    """Bytes from an upload, a camera or a URL → an upright L/RGB image, or a clear error."""
    try:
        return decode_image(data).image
    except BadImage as exc:
        raise ImageLabError(f"not a usable image: {exc}") from None


@dataclass
class Prediction:
    """One image's prediction: the top classes with probabilities, all probabilities in class
    order, the label (or ``unknown``), whether it cleared the threshold, and the time taken in
    seconds."""
    top: list[tuple[str, float]]     # (class, probability), best first
    probabilities: list[float]
    label: str                       # the best class, or "unknown" below the threshold
    confident: bool
    seconds: float


def predict_one(lm: LoadedModel, img: Image.Image, *, top_k: int = 5,
                threshold: float = 0.0) -> Prediction:
    """Predict one decoded image; returns a ``Prediction`` (what the Demo and the service use).

    Probabilities are calibrated by the run's temperature; ``top`` holds the ``top_k`` best
    classes; the label is ``unknown`` when the best probability is below ``threshold``
    (0–1); ``seconds`` times the input, the forward and the softmax.

    It takes the shortest path: the model's forward plus as few other calls as can be.
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
        except Exception:       # any failure: the general path below is the reference
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
