'''The export bundle: a zip a user unpacks and runs with ``python predict.py IMAGE...``.

It holds the model (``model.onnx`` or ``model.pt2``), ``classes.json``,
``preprocessing.json`` (the contract, ``Preprocessing.to_dict``), ``predict.py``,
``decode.py`` and ``preprocess.py`` (ImageLab's own ``core/data`` modules, shipped byte
for byte: numpy and Pillow only), ``export_check.json`` (the export's figures) and
``README.md``, the export's card.

The model takes uint8 N×H×W×C pixels at its size and returns calibrated probabilities,
so ``predict.py`` only decodes and resizes (``Preprocessing.to_pixels``), the one step
that is not in the graph.
'''

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from core.data import decode, preprocess
from core.data.preprocess import Preprocessing
from core.inference.export_formats import ExportResult
from core.units import format_size

# Shipped in every bundle as they are: torch-free, and importing no other project module.
BUNDLED_MODULES = (decode, preprocess)


def write_bundle(result: ExportResult, out_zip: Path, *, classes: list[str],
                 preprocessing: Preprocessing) -> Path:
    """Write the bundle for ``result`` at ``out_zip`` (atomically) and record it in
    ``result.bundle``; writing it again (with the parity figures) replaces it."""
    model_path = Path(result.path)
    out_zip = Path(out_zip)
    result.bundle = str(out_zip)
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
        zf.writestr("README.md", card_text(result, classes))
    os.replace(tmp, out_zip)
    return out_zip


def card_text(result: ExportResult, classes: list[str]) -> str:
    """The export's card (Markdown): what the model takes and returns, and its figures."""
    r = result
    quant = f" ({r.quantization} quantisation)" if r.quantization else ""
    lines = [f"# {r.format.upper()} export, {r.precision}{quant}", "",
             f"Classes ({len(classes)}): {', '.join(classes)}", "",
             "Input `images`: uint8 N×H×W×C at the model's size. Output `probs`: calibrated "
             "probabilities, one row per image.", "",
             "Inside the model: " + "; ".join(r.in_graph) + ".",
             f"Outside: {r.outside_graph}.", "",
             f"Size: {format_size(r.size_bytes)}."]
    for batch, t in r.latency.items():
        lines.append(f"Latency at batch {batch.lstrip('b')}: p50 {t['p50_ms']:.2f} ms, "
                     f"p95 {t['p95_ms']:.2f} ms (this machine's CPU).")
    p = r.parity
    if p:
        lines += ["", f"Checked from files: `python predict.py` on {p['images']} real images "
                      f"of the {p['split']} split against the app's own predictions: top-1 "
                      f"agreement {100 * p['top1_agreement']:.2f}%, max |Δ probability| "
                      f"{p['max_prob_diff']:.2e}; accuracy {100 * p['accuracy_export']:.2f}% "
                      f"(the app's {100 * p['accuracy_app']:.2f}%)."]
    if r.override:
        lines += ["", f"Kept by the user's override although: {r.refusal}."]
    lines += ["", "Run: `python predict.py IMAGE...` (`--json` for every probability)."]
    return "\n".join(lines) + "\n"


_PREDICT_HEAD = '''"""Predict with the exported {what}: python predict.py [--json] IMAGE...

Prints one ``path<TAB>class<TAB>probability`` line per image; ``--json`` prints one JSON
object per line instead, with every class's probability. An image that cannot be read is
reported on stderr (the exit status is then 1). ``--save-inputs FILE.npz`` also writes the
uint8 pixels (``pixels``, N×H×W×C) the model was given.

The model takes uint8 images N×H×W×C at its size and returns calibrated probabilities:
layout, scaling, mean/std, temperature and softmax are inside it. The one step outside,
the resize, is ``preprocess.py``'s (``Preprocessing.to_pixels``) under the contract in
``preprocessing.json``; images are decoded by ``decode.py``. Both files are ImageLab's own
modules, shipped as they are, so this bundle sees an image exactly as the app does.
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
    return lambda x: session.run(["probs"], {"images": x})[0]
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

def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict the class of each image.")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--save-inputs", metavar="FILE.npz",
                        help="also save the uint8 pixels the model was given")
    args = parser.parse_args(argv)
    pre = Preprocessing.from_dict(json.loads((HERE / "preprocessing.json").read_text()))
    classes = json.loads((HERE / "classes.json").read_text())
    forward = load_model()
    failed, saved = 0, []
    for start in range(0, len(args.images), BATCH):
        names, pixels = [], []
        for path in args.images[start:start + BATCH]:
            try:
                pixels.append(pre.to_pixels(load_image_file(path).image))
            except BadImage as exc:
                print(f"{path}\\tcannot read: {exc}", file=sys.stderr)
                failed += 1
                continue
            names.append(path)
        if not names:
            continue
        batch = np.stack(pixels)
        probs = np.asarray(forward(batch), dtype=np.float64)
        if args.save_inputs:
            saved.append(batch)
        for path, p in zip(names, probs):
            best = int(p.argmax())
            if args.json:
                print(json.dumps({"path": path, "class": classes[best],
                                  "probability": float(p[best]),
                                  "probabilities": dict(zip(classes, map(float, p)))}))
            else:
                print(f"{path}\\t{classes[best]}\\t{p[best]:.4f}")
    if args.save_inputs:
        size = pre.image_size
        np.savez(args.save_inputs, pixels=np.concatenate(saved) if saved else
                 np.zeros((0, size, size, pre.channels), dtype=np.uint8))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
'''

PREDICT_SNIPPET_ONNX = (_PREDICT_HEAD.format(what="ONNX model") + _PREDICT_ONNX_MODEL
                        + _PREDICT_MAIN)
PREDICT_SNIPPET_PT2 = (_PREDICT_HEAD.format(what="torch.export program") + _PREDICT_PT2_MODEL
                       + _PREDICT_MAIN)
