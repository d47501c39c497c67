"""Checked exports: ONNX and ``torch.export`` programs (.pt2) that take uint8 pixels.

The exported graph is a ``DeployedModel`` (``core.inference.export_graph``): uint8
N×H×W×C at the model's size in, calibrated probabilities out. ``export_model`` writes it,
reloads it (onnxruntime for ONNX, ``torch.export.load`` for .pt2) and compares its
probabilities with the app's own path on real images (``LoadedModel.to_tensor``, the
network, the temperature, softmax); an export above the tolerance is deleted and refused.
The end-to-end check from files, through the bundle, is ``core.inference.export_parity``.
TorchScript is deprecated in torch 2.14 and not offered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.data.preprocess import Preprocessing
from core.errors import ImageLabError
from core.inference.export_graph import (
    IN_GRAPH,
    deployed,
    export_onnx,
    export_pt2,
    nhwc,
    runner_for,
)

FORMATS = ("onnx", "pt2")
PRECISIONS = ("fp32", "int8")
DEFAULT_TOLERANCE = 1e-4           # max |Δ probability| for an fp32 export


@dataclass
class ExportResult:
    """A checked export and its figures (``export_check.json`` holds ``to_dict``).

    ``max_abs_diff`` is the largest probability difference from the app's own path on
    ``num_images_checked`` cached images; ``parity`` the end-to-end figures from files
    through the extracted bundle (``export_parity.check_bundle``); ``latency`` p50/p95 ms
    at batch 1 and 32; ``accuracy`` on the validation split; ``quantization`` is
    ``dynamic`` or ``static`` for int8; ``override`` says an int8 export was kept by the
    user although it failed its limits (``refusal`` then says which); ``int8`` holds both
    quantised variants' figures against fp32, and ``tolerance`` is None for int8."""
    format: str
    path: str
    max_abs_diff: float
    tolerance: float | None
    num_images_checked: int
    size_bytes: int
    precision: str = "fp32"
    quantization: str | None = None
    bundle: str | None = None
    parity: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    accuracy: float | None = None
    override: bool = False
    refusal: str = ""
    int8: dict = field(default_factory=dict)
    in_graph: list[str] = field(default_factory=lambda: list(IN_GRAPH))
    outside_graph: str = ("the resize to the model's size: preprocess.py "
                          "(Preprocessing.to_pixels), shipped in the bundle")

    def to_dict(self) -> dict:
        """The result as a plain dict (JSON-ready)."""
        return asdict(self)

    @property
    def name(self) -> str:
        """``onnx-fp32``, ``pt2-fp32`` or ``onnx-int8``: the key in ``export_check.json``."""
        return f"{self.format}-{self.precision}"


def reference_probs(model: nn.Module, preprocessing: Preprocessing, temperature: float,
                    levels: np.ndarray) -> np.ndarray:
    """The app's probabilities for uint8 N×C×H×W ``levels``: the contract's scaling (as
    ``LoadedModel.to_tensor``), the network, logits / temperature, softmax."""
    x = torch.from_numpy(preprocessing.normalise(levels))
    with torch.inference_mode():
        return torch.softmax(model(x).float() / temperature, dim=1).double().numpy()


def export_model(model: nn.Module, fmt: str, out: Path, levels: np.ndarray, *,
                 preprocessing: Preprocessing, temperature: float = 1.0,
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export ``model`` with the contract and temperature inside (``DeployedModel``) to
    ``out`` and check it on real uint8 N×C×H×W ``levels`` against the app's probabilities.

    Raises ``ImageLabError`` for an unknown format, no images, an exporter failure or a
    probability difference above ``tolerance`` (nothing is left at ``out`` then)."""
    if fmt not in FORMATS:
        raise ImageLabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    levels = np.asarray(levels, dtype=np.uint8)
    if levels.ndim != 4 or len(levels) == 0:
        raise ImageLabError("an export check needs at least one image")
    module = deployed(model, preprocessing, temperature)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pixels = nhwc(levels)
    # An example batch of 2: a batch of 1 would be specialised as a constant.
    example = torch.from_numpy(pixels[:2] if len(pixels) >= 2 else np.repeat(pixels, 2, axis=0))
    try:
        (export_onnx if fmt == "onnx" else export_pt2)(module, out, example)
        exported = np.asarray(runner_for(out)(pixels), dtype=np.float64)
    except Exception as exc:  # exporter failures are many and varied: report, keep nothing
        remove_export(out)
        raise ImageLabError(f"{fmt} export failed: {type(exc).__name__}: {exc}") from None
    reference = reference_probs(module.model, preprocessing, temperature, levels)
    diff = float(np.max(np.abs(reference - exported)))
    if not np.isfinite(diff) or diff > tolerance:
        remove_export(out)
        raise ImageLabError(f"{fmt} export refused: its probabilities differ from the app's by "
                            f"up to {diff:.3g} (tolerance {tolerance:g})")
    return ExportResult(fmt, str(out), diff, tolerance, len(levels), out.stat().st_size)


def remove_export(path: Path) -> None:
    """Delete an export and its external-data file, if any (missing files are fine)."""
    for p in (Path(path), Path(str(path) + ".data")):
        try:
            p.unlink()
        except OSError:
            pass
