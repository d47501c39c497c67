"""Export a run's model: export, check from files through the bundle, measure, keep or refuse.

``export_run`` is what the CLI (``python -m core export``) and the Demo page call. Every
export takes uint8 pixels and returns calibrated probabilities (``export_graph``). Before
it is kept:

1. its probabilities are compared with the app's on real cached images (``export_model``,
   at ``DEFAULT_TOLERANCE``: a first check that costs no subprocess);
2. its bundle is unpacked and ``predict.py`` run on the files of the run's validation split
   (``export_parity.check_bundle``); an fp32 export must agree on every top-1 answer and
   within ``tolerance`` on every probability;
3. its latency is measured at batch 1 and 32.

An int8 export (ONNX only) is made both ways (``quantize``), each measured against the
fp32 model on the validation split; the better one within the limits is kept at
``model-int8.onnx``, or, with ``accept_loss``, the better one even outside them (the
override is recorded). Figures of every export, kept or refused, go to
``exports/<run_id>/export_check.json`` (``read_checks``), keyed ``onnx-fp32``, ``pt2-fp32``
and ``onnx-int8``; each bundle holds its own entry and a card (README.md) with them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.evaluation.evaluate import labelled_rows
from core.inference import quantize as q
from core.inference.export_bundle import write_bundle
from core.inference.export_formats import (
    DEFAULT_TOLERANCE,
    FORMATS,
    PRECISIONS,
    ExportResult,
    export_model,
    remove_export,
)
from core.inference.export_graph import latency, nhwc, onnx_runner, runner_for
from core.inference.export_parity import MAX_IMAGES, check_bundle
from core.store.workspace import Workspace, atomic_write_text
from core.training.run_model import LoadedModel, load_run_model, run_dataset

CHECK_IMAGES = 32
CHECK_FILE = "export_check.json"


def default_out(ws: Workspace, run_id: str, fmt: str, precision: str = "fp32") -> Path:
    """``exports/<run_id>/model.onnx``, ``model.pt2`` or ``model-int8.onnx`` (what the
    service's ``--model onnx|int8`` reads)."""
    stem = "model-int8" if precision == "int8" else "model"
    return ws.root / "exports" / run_id / f"{stem}.{fmt}"


def read_checks(ws: Workspace, run_id: str) -> dict:
    """``exports/<run_id>/export_check.json``: {export name: figures}, {} when none."""
    try:
        data = json.loads((ws.root / "exports" / run_id / CHECK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(out: Path, result: ExportResult, kept: bool) -> None:
    path = out.parent / CHECK_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[result.name] = {**result.to_dict(), "kept": kept}
    atomic_write_text(path, json.dumps(data, indent=2))


def export_run(ws: Workspace, run_id: str, fmt: str = "onnx", out: Path | None = None, *,
               precision: str = "fp32", tolerance: float = DEFAULT_TOLERANCE,
               accept_loss: bool = False, cap: int = MAX_IMAGES) -> ExportResult:
    """Export run ``run_id``'s model as ``fmt`` at ``precision`` to ``out`` (default
    ``default_out``), checked, measured and bundled (``<out stem>-bundle.zip``).

    Raises ``ImageLabError`` (with the figures) when the run's dataset is gone, the export
    fails a check, or an int8 export is outside the limits and ``accept_loss`` is not set;
    a refused export leaves no file behind but its figures in ``export_check.json``."""
    if fmt not in FORMATS or precision not in PRECISIONS:
        raise ImageLabError(f"unknown export {fmt!r} at {precision!r}; formats: "
                            f"{', '.join(FORMATS)}; precisions: {', '.join(PRECISIONS)}")
    if precision == "int8" and fmt != "onnx":
        raise ImageLabError("int8 exports are ONNX only (onnxruntime's quantisation tools)")
    lm = load_run_model(ws, run_id)
    dataset = run_dataset(ws, run_id)
    if dataset is None:
        raise ImageLabError(f"run {run_id}'s dataset no longer exists: no real images to check "
                            "the export against")
    out = Path(out) if out is not None else default_out(ws, run_id, fmt, precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = load_cache(ws, dataset, lm.image_size)
    pick = np.linspace(0, len(cache) - 1, min(CHECK_IMAGES, len(cache))).astype(np.int64)
    levels = np.asarray(cache.pixels[pick])
    if precision == "int8":
        result = _int8(ws, lm, dataset, out, levels, accept_loss=accept_loss)
    else:
        result = export_model(lm.model, fmt, out, levels, preprocessing=lm.preprocessing,
                              temperature=lm.temperature)
        result.tolerance = tolerance
        result.latency = latency(runner_for(out), nhwc(levels))
    bundle = out.with_name(out.stem + "-bundle.zip")
    write_bundle(result, bundle, classes=lm.classes, preprocessing=lm.preprocessing)
    try:
        result.parity = check_bundle(ws, lm, bundle, dataset, cap=cap)
    except Exception:
        _discard(out, bundle)
        raise
    p = result.parity
    if precision == "fp32":
        result.accuracy = p["accuracy_export"]
        if p["top1_agreement"] < 1.0 or not p["max_prob_diff"] <= tolerance:
            _discard(out, bundle)
            result.refusal = (f"from files ({p['images']} images of the {p['split']} split, "
                              f"through the bundle's predict.py) it agrees with the app on "
                              f"{100 * p['top1_agreement']:.2f}% of top-1 answers (100% needed) "
                              f"and its probabilities differ by up to {p['max_prob_diff']:.3g} "
                              f"(tolerance {tolerance:g})")
            _record(out, result, kept=False)
            raise ImageLabError(f"{fmt} export refused: {result.refusal}")
    write_bundle(result, bundle, classes=lm.classes, preprocessing=lm.preprocessing)
    _record(out, result, kept=True)
    return result


def _discard(out: Path, bundle: Path) -> None:
    remove_export(out)
    bundle.unlink(missing_ok=True)


def _validation(ws: Workspace, lm: LoadedModel, dataset: str, split: str,
                cap: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×H×W×C pixels and true class indices of ``split`` (at most ``cap``, evenly
    spaced), from the decoded-pixel cache: the contract's resize of the stored files."""
    ids, names, _ = labelled_rows(ws, dataset, split)
    if len(ids) == 0:
        ids, names, _ = labelled_rows(ws, dataset, "all")
    pick = np.unique(np.linspace(0, len(ids) - 1, min(cap, len(ids))).round().astype(int))
    pick = pick if len(ids) else pick[:0]
    index = {c: i for i, c in enumerate(lm.classes)}
    labels = np.array([index.get(names[k], -1) for k in pick])
    if len(pick) == 0:
        raise ImageLabError(f"dataset {dataset!r} has no labelled images to measure the int8 "
                            "export on")
    cache = load_cache(ws, dataset, lm.image_size)
    position = {int(i): k for k, i in enumerate(cache.image_ids)}
    rows = np.array([position[int(ids[k])] for k in pick])
    return nhwc(np.asarray(cache.pixels)[rows]), labels


def _int8(ws: Workspace, lm: LoadedModel, dataset: str, out: Path, levels: np.ndarray, *,
          accept_loss: bool) -> ExportResult:
    """Both int8 variants from a checked fp32 ONNX export; the chosen one moved to ``out``."""
    val_pixels, labels = _validation(ws, lm, dataset, "val", MAX_IMAGES)
    train_pixels, _ = _validation(ws, lm, dataset, "train", q.CALIBRATION_IMAGES)
    with tempfile.TemporaryDirectory(prefix="int8-", dir=ws.tmp_dir) as tmp:
        fp32 = export_model(lm.model, "onnx", Path(tmp) / "fp32.onnx", levels,
                            preprocessing=lm.preprocessing, temperature=lm.temperature)
        run = onnx_runner(Path(fp32.path))
        fp32_probs = np.concatenate([run(val_pixels[i:i + 256])
                                     for i in range(0, len(val_pixels), 256)])
        fp32_accuracy = float(np.mean(fp32_probs.argmax(1) == labels))
        variants, files = {}, {}
        for mode in q.MODES:
            files[mode] = q.quantize(Path(fp32.path), Path(tmp) / f"{mode}.onnx", mode,
                                     train_pixels)
            variants[mode] = q.measure(files[mode], val_pixels, labels, fp32_probs,
                                       fp32_accuracy)
            variants[mode]["refusal"] = q.verdict(variants[mode])
        mode = q.choose(variants)
        chosen = variants[mode]
        result = ExportResult("onnx", str(out), chosen["max_prob_diff"], None,
                              chosen["images"], chosen["size_bytes"], precision="int8",
                              quantization=mode, latency=chosen["latency"],
                              accuracy=chosen["accuracy"], refusal=chosen["refusal"],
                              override=bool(chosen["refusal"]) and accept_loss)
        result.int8 = {"variants": variants, "fp32_latency": latency(run, val_pixels),
                       "fp32_size_bytes": fp32.size_bytes, "fp32_accuracy": fp32_accuracy,
                       "limits": {"max_accuracy_drop": q.MAX_ACCURACY_DROP,
                                  "max_changed": q.MAX_CHANGED}}
        if chosen["refusal"] and not accept_loss:
            _record(out, result, kept=False)
            raise ImageLabError(f"int8 export refused: the best variant ({mode}) "
                                f"{chosen['refusal']}; "
                                + "; ".join(f"{m}: accuracy {100 * v['accuracy']:.2f}% (fp32 "
                                            f"{100 * v['accuracy_fp32']:.2f}%), top-1 agreement "
                                            f"{100 * v['top1_agreement']:.2f}%"
                                            for m, v in variants.items())
                                + ". Override to keep it anyway.")
        remove_export(out)
        shutil.move(files[mode], out)
    return result
