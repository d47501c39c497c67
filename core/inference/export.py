"""Checked exports: ONNX and ``torch.export`` programs (.pt2), with a bundle.

Every export is reloaded (onnxruntime for ONNX, ``torch.export.load`` for .pt2)
and compared with the PyTorch model on real images; the maximum absolute logit
difference is reported, and an export above the tolerance is deleted and refused.
TorchScript is deprecated in torch 2.14 and not offered.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import ImageLabError

FORMATS = ("onnx", "pt2")
DEFAULT_TOLERANCE = 1e-3


@dataclass
class ExportResult:
    format: str
    path: str
    max_abs_diff: float
    tolerance: float
    num_images_checked: int
    size_bytes: int
    bundle: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def export_model(model: nn.Module, fmt: str, out: Path, check_inputs: torch.Tensor, *,
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export ``model`` (fp32, eval, CPU) to ``out`` and check it on ``check_inputs`` (N×C×H×W)."""
    if fmt not in FORMATS:
        raise ImageLabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if check_inputs.ndim != 4 or len(check_inputs) == 0:
        raise ImageLabError("an export check needs at least one image")
    model = model.eval().float().to("cpu").to(memory_format=torch.contiguous_format)
    check_inputs = check_inputs.float().contiguous()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # An example batch of 2: a batch of 1 would be specialised as a constant.
    example = check_inputs[:2] if len(check_inputs) >= 2 else check_inputs.repeat(2, 1, 1, 1)
    batch = torch.export.Dim.DYNAMIC
    try:
        if fmt == "onnx":
            program = torch.onnx.export(model, (example,), dynamo=True,
                                        dynamic_shapes=({0: batch},), input_names=["images"],
                                        output_names=["logits"], verbose=False)
            program.save(str(out))
            exported = _run_onnx(out, check_inputs)
        else:
            ep = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(ep, str(out))
            loaded = torch.export.load(str(out)).module()
            with torch.inference_mode():
                exported = loaded(check_inputs).numpy()
    except ImageLabError:
        raise
    except Exception as exc:  # exporter failures are many and varied: report, keep nothing
        _remove(out)
        raise ImageLabError(f"{fmt} export failed: {type(exc).__name__}: {exc}") from None
    with torch.inference_mode():
        reference = model(check_inputs).numpy()
    diff = float(np.max(np.abs(reference - exported)))
    if not np.isfinite(diff) or diff > tolerance:
        _remove(out)
        raise ImageLabError(f"{fmt} export refused: its logits differ from PyTorch's by up to "
                            f"{diff:.3g} (tolerance {tolerance:g})")
    return ExportResult(fmt, str(out), diff, tolerance, len(check_inputs), out.stat().st_size)


def write_bundle(result: ExportResult, out_zip: Path, *, classes: list[str],
                 preprocessing: dict) -> Path:
    """A zip with the model, classes.json, preprocessing.json and a runnable predict.py."""
    model_path = Path(result.path)
    snippet = PREDICT_SNIPPET_ONNX if result.format == "onnx" else PREDICT_SNIPPET_PT2
    tmp = out_zip.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(model_path, f"model.{result.format}")
        zf.writestr("classes.json", json.dumps(classes, indent=2))
        zf.writestr("preprocessing.json", json.dumps(preprocessing, indent=2))
        zf.writestr("predict.py", snippet)
        zf.writestr("export_check.json", json.dumps(result.to_dict(), indent=2))
    os.replace(tmp, out_zip)
    result.bundle = str(out_zip)
    return out_zip


def _run_onnx(path: Path, inputs: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs.numpy()})[0]


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".data")):
        try:
            p.unlink()
        except OSError:
            pass


_PREPROCESS = '''
import json, sys
import numpy as np
from PIL import Image, ImageOps

pre = json.load(open("preprocessing.json"))
classes = json.load(open("classes.json"))


def load(path):
    img = ImageOps.exif_transpose(Image.open(path))
    img = img.convert("L" if pre["channels"] == 1 else "RGB")
    img = img.resize((pre["image_size"], pre["image_size"]), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    mean = np.array(pre["mean"], dtype=np.float32)[:, None, None]
    std = np.array(pre["std"], dtype=np.float32)[:, None, None]
    return ((x - mean) / std)[None]


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
'''

PREDICT_SNIPPET_ONNX = '''"""Predict with the exported ONNX model: python predict.py IMAGE..."""
import onnxruntime as ort
''' + _PREPROCESS + '''
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
for path in sys.argv[1:]:
    probs = softmax(session.run(None, {session.get_inputs()[0].name: load(path)})[0])[0]
    best = int(probs.argmax())
    print(f"{path}\\t{classes[best]}\\t{probs[best]:.4f}")
'''

PREDICT_SNIPPET_PT2 = '''"""Predict with the exported torch.export program: python predict.py IMAGE..."""
import torch
''' + _PREPROCESS + '''
program = torch.export.load("model.pt2").module()
for path in sys.argv[1:]:
    with torch.inference_mode():
        probs = softmax(program(torch.from_numpy(load(path))).numpy())[0]
    best = int(probs.argmax())
    print(f"{path}\\t{classes[best]}\\t{probs[best]:.4f}")
'''
