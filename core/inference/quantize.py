"""int8 ONNX exports through onnxruntime's quantisation tools, measured against fp32.

Two ways, both from the checked fp32 ONNX export (uint8 pixels in, probabilities out):

- **dynamic** (``quantize_dynamic``): int8 weights, activations quantised per call;
- **static** (``quantize_static``, QDQ, per-channel int8 weights, uint8 activations):
  activation ranges calibrated on ``CALIBRATION_IMAGES`` images of the run's train split.

Only the network's ``QUANTISED_OPS`` are quantised: the preprocessing at the input and the
softmax at the output stay float, so probabilities keep their resolution. ``measure``
gives a variant's size, p50/p95 latency at batch 1 and 32, and its accuracy and top-1
agreement against the fp32 model on the same validation inputs; ``verdict`` applies the
limits (``MAX_ACCURACY_DROP``, ``MAX_CHANGED``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.inference.export_graph import INPUT_NAME, latency, onnx_runner

MODES = ("dynamic", "static")
QUANTISED_OPS = ["Conv", "Gemm", "MatMul"]
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 32
MAX_ACCURACY_DROP = 0.01       # one point of validation accuracy
MAX_CHANGED = 0.02             # share of top-1 answers that differ from fp32


class _Calibration:
    """onnxruntime's ``CalibrationDataReader`` protocol over uint8 N×H×W×C train images."""

    def __init__(self, pixels: np.ndarray):
        self._batches = iter([pixels[i:i + CALIBRATION_BATCH]
                              for i in range(0, len(pixels), CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        """The next calibration batch as onnxruntime's feed dict, or None at the end."""
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch)}

    def rewind(self) -> None:
        """Not needed: each quantisation reads the batches once."""


def quantize(fp32: Path, out: Path, mode: str, calibration: np.ndarray) -> Path:
    """Write the ``mode`` (``dynamic``/``static``) int8 version of ``fp32`` at ``out``;
    ``calibration`` holds uint8 N×H×W×C train images (static only)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:       # shape inference and graph optimisation, as onnxruntime recommends
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        except Exception:      # a graph it cannot optimise is quantised as exported
            prepared = Path(fp32)
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8,
                             op_types_to_quantize=QUANTISED_OPS)
        else:
            quantize_static(str(prepared), str(out), _Calibration(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=QUANTISED_OPS,
                            calibrate_method=CalibrationMethod.MinMax)
    return Path(out)


def measure(path: Path, val_pixels: np.ndarray, labels: np.ndarray,
            fp32_probs: np.ndarray, fp32_accuracy: float) -> dict:
    """An int8 file's figures on the validation inputs ``val_pixels`` (uint8 N×H×W×C) with
    true class indices ``labels``, against the fp32 model's probabilities there."""
    run = onnx_runner(path)
    probs = np.concatenate([run(val_pixels[i:i + 256]) for i in range(0, len(val_pixels), 256)])
    top = probs.argmax(1)
    accuracy = float(np.mean(top == labels))
    return {"size_bytes": Path(path).stat().st_size, "latency": latency(run, val_pixels),
            "accuracy": accuracy, "accuracy_fp32": fp32_accuracy,
            "accuracy_drop": round(fp32_accuracy - accuracy, 6),
            "top1_agreement": float(np.mean(top == fp32_probs.argmax(1))),
            "max_prob_diff": float(np.max(np.abs(probs - fp32_probs))),
            "images": len(labels)}


def verdict(figures: dict) -> str:
    """Why a measured int8 variant is refused ('' when it is within the limits)."""
    reasons = []
    if figures["accuracy_drop"] > MAX_ACCURACY_DROP:
        reasons.append(f"it loses {100 * figures['accuracy_drop']:.2f} points of validation "
                       f"accuracy ({100 * figures['accuracy_fp32']:.2f}% → "
                       f"{100 * figures['accuracy']:.2f}%; the limit is "
                       f"{100 * MAX_ACCURACY_DROP:g})")
    changed = 1.0 - figures["top1_agreement"]
    if changed > MAX_CHANGED:
        reasons.append(f"it changes {100 * changed:.2f}% of top-1 answers (the limit is "
                       f"{100 * MAX_CHANGED:g}%)")
    return " and ".join(reasons)


def choose(variants: dict[str, dict]) -> str:
    """The variant to keep: one within the limits if any, the highest top-1 agreement with
    fp32 first, then the lower p50 latency at batch 32."""
    def key(mode):
        f = variants[mode]
        return (bool(verdict(f)), -f["top1_agreement"], f["latency"]["b32"]["p50_ms"])
    return min(variants, key=key)
