"""What the prediction service runs a batch on: the run's PyTorch model or an ONNX export.

A runner has two halves, split for the dynamic batcher (``core.inference.batcher``):
``prepare(img)`` turns one decoded image into the model's uint8 input row (on a prepare
thread), and ``probabilities(rows)`` runs one forward on a batch of them (on the forward
thread) and returns calibrated probabilities (float64, N×classes).

- ``TorchRunner``: the run's ``best.pt`` (``LoadedModel``), fed as ``predict_one`` feeds it:
  the contract's resize, planar pixels, ``levels * scale + shift`` in float32, logits divided
  by the run's temperature.
- ``OnnxRunner``: ``exports/<run_id>/model.onnx`` (``--model onnx``) or ``model-int8.onnx``
  (``--model int8``) on onnxruntime. It reads the graph's input and output rather than
  assuming one: a ``uint8`` input is fed the resized pixels as they are (N×H×W×C, or
  N×C×H×W if that is the graph's layout), a float input the normalised N×C×H×W floats; an
  output named ``probs`` is taken as calibrated probabilities, any other as logits
  (divided by the run's temperature, then softmax).

``export_file(ws, run_id, kind)`` finds (``onnx``: creates through ``export_run`` when missing
or older than the checkpoint) the file that ``--model`` names.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.errors import ImageLabError
from core.inference.predictor import LoadedModel, checkpoint_path, planar_pixels
from core.inference.run_export import export_run
from core.store.workspace import Workspace

MODEL_KINDS = ("torch", "onnx", "int8")
EXPORT_NAMES = {"onnx": "model.onnx", "int8": "model-int8.onnx"}


def export_file(ws: Workspace, run_id: str, kind: str) -> Path:
    """The ONNX file ``--model kind`` serves for run ``run_id``: ``exports/<run_id>/model.onnx``
    or ``model-int8.onnx``.

    A missing or stale (older than the run's checkpoint) ``model.onnx`` is exported now, with
    ``export_run`` (checked against PyTorch, bundled, as the Demo page's Export does). The
    int8 file is never made here: its accuracy must be checked and accepted first, so a
    missing or stale one raises ``ImageLabError`` saying how to make it."""
    if kind not in EXPORT_NAMES:
        raise ImageLabError(f"unknown --model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    path = ws.root / "exports" / run_id / EXPORT_NAMES[kind]
    checkpoint = checkpoint_path(ws, run_id)
    stale = path.exists() and path.stat().st_mtime < checkpoint.stat().st_mtime
    if kind == "int8":
        if not path.exists() or stale:
            why = "does not exist" if not path.exists() else f"is older than {checkpoint.name}"
            raise ImageLabError(
                f"--model int8: {path} {why}. Make the int8 export first, with `python -m core "
                f"export {run_id} --precision int8` or the Demo page's Export section: its "
                "accuracy against fp32 is checked before it is kept")
        return path
    if not path.exists() or stale:
        why = f"re-exporting (it is older than {checkpoint.name})" if stale else "exporting"
        print(f"--model onnx: {why} run {run_id} to {path} …", file=sys.stderr, flush=True)
        export_run(ws, run_id, "onnx", path)
    return path


class TorchRunner:
    """The run's PyTorch model: planar uint8 rows in, calibrated probabilities out."""

    kind = "torch"

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.inv_temperature = 1.0 / lm.temperature

    def prepare(self, img: Image.Image) -> np.ndarray:
        """One decoded image → its uint8 C×H×W levels (the contract's resize, planar)."""
        img = self.lm.preprocessing.resize(img)
        size = self.lm.image_size
        return np.frombuffer(planar_pixels(img), np.uint8).reshape(self.lm.channels, size, size)

    def probabilities(self, rows: list[np.ndarray]) -> np.ndarray:
        """One forward on a batch of prepared rows → probabilities (float64, N×classes)."""
        levels = torch.from_numpy(np.stack(rows))
        with torch.inference_mode():
            x = torch.addcmul(self.lm._shift, levels, self.lm._scale)
            logits = self.lm.model(x).double()
            return torch.softmax(logits * self.inv_temperature, dim=1).numpy()


class OnnxRunner:
    """An ONNX file on onnxruntime, fed as its input says (see the module docstring)."""

    def __init__(self, path: Path, lm: LoadedModel, kind: str = "onnx", threads: int | None = None):
        import onnxruntime as ort  # only when an ONNX model is served: it takes ~0.3 s to load

        self.kind, self.path, self.lm = kind, Path(path), lm
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:    # onnxruntime raises its own exception types
            raise ImageLabError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.uint8 = inp.type == "tensor(uint8)"
        if not self.uint8 and inp.type != "tensor(float)":
            raise ImageLabError(f"{path}: its input {inp.name!r} is {inp.type}; the service feeds "
                                "uint8 pixels or float32 inputs")
        shape = list(inp.shape)
        c, s = lm.channels, lm.image_size
        if len(shape) != 4:
            raise ImageLabError(f"{path}: its input has shape {shape}; expected 4 dimensions")
        self.nhwc = shape[3] == c and shape[1] != c   # else N×C×H×W (also when both are ints == c)
        expected = [s, s, c] if self.nhwc else [c, s, s]
        if [d for d in shape[1:] if isinstance(d, int)] != [e for d, e in zip(shape[1:], expected)
                                                           if isinstance(d, int)]:
            raise ImageLabError(f"{path}: its input {shape} does not take this run's "
                                f"{c}×{s}×{s} images: export the run again")
        classes = out.shape[-1] if out.shape else None
        if isinstance(classes, int) and classes != len(lm.classes):
            raise ImageLabError(f"{path} answers {classes} classes; run {lm.run_id} has "
                                f"{len(lm.classes)}: export the run again")
        self.probs_out = out.name == "probs"
        self.inv_temperature = 1.0 / lm.temperature
        self._scale = lm.preprocessing.scale.reshape(-1, 1, 1)
        self._shift = lm.preprocessing.shift.reshape(-1, 1, 1)

    def prepare(self, img: Image.Image) -> np.ndarray:
        """One decoded image → its uint8 row in the graph's layout (H×W×C or C×H×W)."""
        img = self.lm.preprocessing.resize(img)
        s, c = self.lm.image_size, self.lm.channels
        if self.nhwc:
            return np.asarray(img, dtype=np.uint8).reshape(s, s, c)
        return np.frombuffer(planar_pixels(img), np.uint8).reshape(c, s, s)

    def probabilities(self, rows: list[np.ndarray]) -> np.ndarray:
        """One ``session.run`` on a batch of prepared rows → probabilities (float64, N×classes)."""
        x = np.stack(rows)
        if not self.uint8:
            x = x.astype(np.float32)
            x *= self._scale
            x += self._shift
        y = self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float64)
        if self.probs_out:
            return y
        z = y * self.inv_temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def load_runner(ws: Workspace, run_id: str, lm: LoadedModel, kind: str = "torch",
                threads: int | None = None) -> TorchRunner | OnnxRunner:
    """The runner for ``--model kind`` (``torch``, ``onnx`` or ``int8``) of run ``run_id``,
    whose ``LoadedModel`` is ``lm`` (its classes, contract and temperature); ``threads`` caps
    the forward's threads (None: torch's own setting). Raises ``ImageLabError`` for an unknown
    kind or an ONNX file that is missing (int8), cannot load or does not fit the run."""
    if kind not in MODEL_KINDS:
        raise ImageLabError(f"unknown --model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    if kind == "torch":
        return TorchRunner(lm)
    return OnnxRunner(export_file(ws, run_id, kind), lm, kind, threads or os.cpu_count())
