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

from core.data import decode, preprocess
from core.data.preprocess import Preprocessing
from core.errors import ImageLabError

FORMATS = ("onnx", "pt2")
DEFAULT_TOLERANCE = 1e-3
# Shipped in every bundle as they are: torch-free, and importing no other project module.
BUNDLED_MODULES = (decode, preprocess)


@dataclass
class ExportResult:
    """A checked export: format, file, the largest absolute logit difference from PyTorch and the
    tolerance it passed, images checked, size in bytes, and the bundle's path once written."""
    format: str
    path: str
    max_abs_diff: float
    tolerance: float
    num_images_checked: int
    size_bytes: int
    bundle: str | None = None

    def to_dict(self) -> dict:
        """The result as a plain dict (JSON-ready)."""
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
                 preprocessing: Preprocessing) -> Path:
    """A zip with the model, classes.json, preprocessing.json and a runnable predict.py.

    ``predict.py`` decodes and preprocesses with ``decode.py`` and ``preprocess.py``, which
    are ImageLab's own ``core/data`` modules copied byte for byte (numpy and Pillow only),
    under the contract that ``preprocessing.json`` records (``Preprocessing.to_dict``).
    """
    model_path = Path(result.path)
    snippet = PREDICT_SNIPPET_ONNX if result.format == "onnx" else PREDICT_SNIPPET_PT2
    tmp = out_zip.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(model_path, f"model.{result.format}")
        zf.writestr("classes.json", json.dumps(classes, indent=2))
        zf.writestr("preprocessing.json", json.dumps(preprocessing.to_dict(), indent=2))
        zf.writestr("predict.py", snippet)
        for module in BUNDLED_MODULES:
            zf.write(module.__file__, Path(module.__file__).name)
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


_PREDICT_HEAD = '''"""Predict with the exported {what}: python predict.py [--json] IMAGE...

Prints one ``path<TAB>class<TAB>probability`` line per image; ``--json`` prints one JSON
object per line instead, with every class's probability. An image that cannot be read is
reported on stderr (the exit status is then 1). ``--save-inputs FILE.npz`` also writes the
uint8 levels (``pixels``) and the float inputs (``inputs``) the model was given.

Images are decoded by ``decode.py`` and resized and scaled by ``preprocess.py``, under the
contract in ``preprocessing.json``: both files are ImageLab's own modules, shipped as they
are, so this bundle sees an image exactly as the app does.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from decode import BadImage, load_image_file
from preprocess import Preprocessing

HERE = Path(__file__).resolve().parent
BATCH = 64
'''

_PREDICT_ONNX_MODEL = '''

def load_model():
    import onnxruntime as ort
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]
'''

_PREDICT_PT2_MODEL = '''

def load_model():
    import torch
    program = torch.export.load(str(HERE / "model.pt2")).module()

    def forward(x):
        with torch.inference_mode():
            return program(torch.from_numpy(x)).numpy()
    return forward
'''

_PREDICT_MAIN = '''

def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict the class of each image.")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--save-inputs", metavar="FILE.npz",
                        help="also save the uint8 levels and float inputs the model was given")
    args = parser.parse_args(argv)
    pre = Preprocessing.from_dict(json.loads((HERE / "preprocessing.json").read_text()))
    classes = json.loads((HERE / "classes.json").read_text())
    forward = load_model()
    failed, saved_pixels, saved_inputs = 0, [], []
    for start in range(0, len(args.images), BATCH):
        names, levels = [], []
        for path in args.images[start:start + BATCH]:
            try:
                levels.append(pre.to_array(load_image_file(path).image))
            except BadImage as exc:
                print(f"{path}\\tcannot read: {exc}", file=sys.stderr)
                failed += 1
                continue
            names.append(path)
        if not names:
            continue
        pixels = np.stack(levels)
        inputs = pre.normalise(pixels)
        probs = softmax(np.asarray(forward(inputs), dtype=np.float64))
        if args.save_inputs:
            saved_pixels.append(pixels)
            saved_inputs.append(inputs)
        for path, p in zip(names, probs):
            best = int(p.argmax())
            if args.json:
                print(json.dumps({"path": path, "class": classes[best],
                                  "probability": float(p[best]),
                                  "probabilities": dict(zip(classes, map(float, p)))}))
            else:
                print(f"{path}\\t{classes[best]}\\t{p[best]:.4f}")
    if args.save_inputs:
        size, channels = pre.image_size, pre.channels
        empty = np.zeros((0, channels, size, size))
        np.savez(args.save_inputs,
                 pixels=np.concatenate(saved_pixels) if saved_pixels else empty.astype(np.uint8),
                 inputs=np.concatenate(saved_inputs) if saved_inputs else empty.astype(np.float32))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
'''

PREDICT_SNIPPET_ONNX = (_PREDICT_HEAD.format(what="ONNX model") + _PREDICT_ONNX_MODEL
                        + _PREDICT_MAIN)
PREDICT_SNIPPET_PT2 = (_PREDICT_HEAD.format(what="torch.export program") + _PREDICT_PT2_MODEL
                       + _PREDICT_MAIN)
