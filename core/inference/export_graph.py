"""What an exported model computes: uint8 pixels in, calibrated probabilities out.

``DeployedModel`` wraps a run's network with everything the app does around it except
the resize: it takes uint8 images N×H×W×C at the model's size (channels in the contract's
order, ``L`` or ``RGB``), lays them out as N×C×H×W, scales them with the contract's own
float32 ``scale``/``shift`` (``Preprocessing``: ``(x / 255 - mean) / std``), runs the
network, divides the logits by the run's temperature and applies softmax. ONNX and
``torch.export`` programs are traced from it, so the file cannot disagree with the
run's preprocessing: there is nothing left outside to copy.

The resize from an arbitrary photo to the model's size stays outside, in
``core/data/preprocess.py`` (``Preprocessing.to_pixels``), which the bundle ships as it
is: ONNX's antialiased ``Resize`` differs from it by up to 14–26 levels (docs/DECISIONS.md,
"Exports that cannot drift").

Runners (``onnx_runner``, ``pt2_runner``) load a file and return a function from a
uint8 N×H×W×C array to probabilities; ``latency`` times one at batch 1 and batch 32.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from core.data.preprocess import Preprocessing

INPUT_NAME = "images"
OUTPUT_NAME = "probs"
IN_GRAPH = ["uint8 N×H×W×C at the model's size → N×C×H×W", "float32 levels * scale + shift "
            "(= (x / 255 - mean) / std)", "the network", "logits / temperature", "softmax"]
LATENCY_BATCHES = (1, 32)
Runner = Callable[[np.ndarray], np.ndarray]


class DeployedModel(nn.Module):
    """``model`` with the contract's layout and scaling before it and the run's temperature
    and softmax after it: uint8 N×H×W×C → float32 N×classes probabilities."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, temperature: float = 1.0):
        super().__init__()
        self.model = model
        shape = (1, preprocessing.channels, 1, 1)
        self.register_buffer("scale", torch.from_numpy(preprocessing.scale.copy()).view(shape))
        self.register_buffer("shift", torch.from_numpy(preprocessing.shift.copy()).view(shape))
        self.temperature = float(temperature)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×H×W×C pixels → calibrated class probabilities."""
        x = images.permute(0, 3, 1, 2).float()
        x = x * self.scale + self.shift              # the arithmetic of LoadedModel.to_tensor
        return torch.softmax(self.model(x) / self.temperature, dim=1)


def deployed(model: nn.Module, preprocessing: Preprocessing, temperature: float) -> DeployedModel:
    """A CPU, fp32, eval-mode ``DeployedModel`` around ``model`` (which is not modified)."""
    # a copy: the caller's model may be shared (st.cache_resource) and must stay as it is
    body = copy.deepcopy(model).eval().float().to("cpu").to(memory_format=torch.contiguous_format)
    return DeployedModel(body, preprocessing, temperature).eval()


def nhwc(levels: np.ndarray) -> np.ndarray:
    """uint8 N×C×H×W levels (the decoded-pixel cache's layout) → the graph's N×H×W×C."""
    return np.ascontiguousarray(np.asarray(levels, dtype=np.uint8).transpose(0, 2, 3, 1))


def export_onnx(module: DeployedModel, out: Path, example: torch.Tensor) -> None:
    """Trace ``module`` to ONNX at ``out``: input ``images`` (uint8, dynamic batch), output
    ``probs``."""
    program = torch.onnx.export(module, (example,), dynamo=True,
                                dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
                                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                verbose=False)
    program.save(str(out))


def export_pt2(module: DeployedModel, out: Path, example: torch.Tensor) -> None:
    """``torch.export`` ``module`` (dynamic batch) and save the program at ``out``."""
    program = torch.export.export(module, (example,),
                                  dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    torch.export.save(program, str(out))


def onnx_runner(path: Path, threads: int = 0) -> Runner:
    """An onnxruntime session on ``path`` (CPU) as a function: uint8 N×H×W×C → probabilities.
    ``threads`` 0 lets onnxruntime choose."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def pt2_runner(path: Path) -> Runner:
    """A saved ``torch.export`` program as a function: uint8 N×H×W×C → probabilities."""
    program = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return program(torch.from_numpy(x)).numpy()
    return run


def torch_runner(module: DeployedModel) -> Runner:
    """The PyTorch ``DeployedModel`` itself as a runner (the baseline for the ratios)."""
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()
    return run


def runner_for(path: Path) -> Runner:
    """The runner for an exported file, by its suffix (``.onnx`` or ``.pt2``)."""
    return onnx_runner(path) if Path(path).suffix == ".onnx" else pt2_runner(path)


def latency(run: Runner, pixels: np.ndarray, *, budget_s: float = 1.0,
            max_repeats: int = 50) -> dict:
    """p50/p95 milliseconds of ``run`` at batch 1 and batch 32 on real ``pixels`` (uint8
    N×H×W×C, repeated to fill a batch); each batch size is timed after one warm-up call, at
    least 5 and at most ``max_repeats`` times, stopping once ``budget_s`` is spent."""
    out = {}
    for batch in LATENCY_BATCHES:
        x = np.ascontiguousarray(np.resize(pixels, (batch,) + pixels.shape[1:]))
        run(x)
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < max_repeats and (len(times) < 5
                                            or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1000.0
        out[f"b{batch}"] = {"p50_ms": round(float(np.percentile(ms, 50)), 4),
                            "p95_ms": round(float(np.percentile(ms, 95)), 4),
                            "repeats": len(times)}
    return out
