"""Issue 19: exports that cannot drift — latency against accuracy, and parity from files.

Models trained here, in a temp workspace: one epoch of the trainer's default net on 600
``sample:shapes`` at 32×32 (RGB), and, when ``../shared/data/cats-dogs`` exists,
``efficientnet_lite0:imagenet`` fine-tuned with the app's defaults (head only) on those
photos (skipped with the reason otherwise). Each is exported as ONNX fp32, .pt2 fp32 and
ONNX int8 (with ``accept_loss``, so the figures exist even when int8 would be refused;
the refusal is in the detail).

1. **Export parity from files**, per format: the bundle's ``predict.py`` run in a
   subprocess on the validation files against the app's ``predict_paths``: top-1
   agreement (target 100% for fp32) with the max probability difference in the detail.
2. **int8 against fp32 ONNX**: p50 latency ratio (fp32 / int8: > 1 means int8 is faster)
   at batch 1 and 32 on the same inputs, with both accuracies and the agreement.
3. **ONNX against PyTorch**: p50 latency ratio (PyTorch / ONNX) at batch 1 and 32 on the
   same inputs, PyTorch running the same ``DeployedModel`` (uint8 in, probabilities out).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import Result
from core.data.decode import load_image_file
from core.data.ingest import DatasetWriter
from core.data.samples import import_sample
from core.data.sources.folder import import_folder
from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.finetune.setup import FinetuneConfig, create_finetune_run
from core.inference.export_graph import deployed, latency, torch_runner
from core.inference.export_parity import split_files
from core.inference.predictor import load_run_model
from core.inference.run_export import export_run
from core.store.workspace import open_workspace
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "cats-dogs"
ISSUE = 19


def _log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _shapes(ws) -> tuple[str, str]:
    import_sample(ws, "sample:shapes", count=600, size=32)
    run = create_run(ws, TrainConfig(dataset="shapes", image_size=32, epochs=1))
    summary = train_run(ws, run.id)
    assert summary["status"] == "finished", summary
    return run.id, "shapes"


def _photos(ws) -> tuple[str, str]:
    with DatasetWriter(ws, "cats-dogs", str(PHOTOS), seed=0,
                       fractions={"train": 0.8, "val": 0.2}) as writer:
        import_folder(writer, PHOTOS)
        writer.commit()
    run = create_finetune_run(ws, TrainConfig(dataset="cats-dogs"),
                              FinetuneConfig("efficientnet_lite0:imagenet"))
    summary = train_run(ws, run.id, callbacks=[FineTuning()])
    assert summary["status"] == "finished", summary
    return run.id, "cats-dogs"


def _measure(ws, run_id: str, dataset: str, label: str) -> list[Result]:
    lm = load_run_model(ws, run_id)
    results, exports = [], {}
    for fmt, precision in (("onnx", "fp32"), ("pt2", "fp32"), ("onnx", "int8")):
        t0 = time.perf_counter()
        exports[f"{fmt}-{precision}"] = r = export_run(ws, run_id, fmt, precision=precision,
                                                       accept_loss=True)
        p = r.parity
        _log(f"{label} {fmt} {precision}: {p['images']} files, agreement "
             f"{100 * p['top1_agreement']:.2f}%, max |dp| {p['max_prob_diff']:.2e} "
             f"({time.perf_counter() - t0:.0f}s)")
        results.append(Result(
            ISSUE, f"{label}: export parity from files, {fmt} {precision} (top-1 agreement)",
            100 * p["top1_agreement"], "%", ">= 100" if precision == "fp32" else "",
            detail={**p, "export_seconds": round(time.perf_counter() - t0, 1),
                    "size_bytes": r.size_bytes, "refusal_overridden": r.refusal}))
    int8, fp32 = exports["onnx-int8"], exports["onnx-fp32"]
    # PyTorch on the same inputs: the same uint8 pixels through the same DeployedModel.
    _, paths, _ = split_files(ws, dataset)
    pixels = np.stack([lm.preprocessing.to_pixels(load_image_file(p).image) for p in paths[:32]])
    torch_lat = latency(torch_runner(deployed(lm.model, lm.preprocessing, lm.temperature)),
                        pixels)
    onnx_lat = fp32.latency
    for b in ("b1", "b32"):
        results.append(Result(
            ISSUE, f"{label}: int8 vs fp32 ONNX latency at batch {b[1:]} (fp32 p50 / int8 p50)",
            onnx_lat[b]["p50_ms"] / int8.latency[b]["p50_ms"], "×",
            detail={"quantization": int8.quantization, "fp32": onnx_lat[b],
                    "int8": int8.latency[b], "accuracy_fp32": fp32.accuracy,
                    "accuracy_int8": int8.accuracy,
                    "top1_agreement_int8_vs_fp32":
                        int8.int8["variants"][int8.quantization]["top1_agreement"],
                    "variants": {m: {k: v[k] for k in ("accuracy", "top1_agreement",
                                                       "size_bytes", "refusal")}
                                 for m, v in int8.int8["variants"].items()}}))
        results.append(Result(
            ISSUE, f"{label}: ONNX vs PyTorch latency at batch {b[1:]} (PyTorch p50 / ONNX p50)",
            torch_lat[b]["p50_ms"] / onnx_lat[b]["p50_ms"], "×",
            detail={"pytorch": torch_lat[b], "onnx": onnx_lat[b],
                    "accuracy_onnx": fp32.accuracy}))
    return results


def run() -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        ws = open_workspace(tmp / "ws")
        run_id, dataset = _shapes(ws)
        results = _measure(ws, run_id, dataset, "shapes")
        if not PHOTOS.is_dir():
            why = "../shared/data/cats-dogs not found"
            _log(f"photo export bench skipped: {why}")
            return results + [Result(ISSUE, f"cats-dogs efficientnet_lite0 exports (skipped: "
                                            f"{why})", 0.0, "", detail={"skipped": why})]
        try:
            run_id, dataset = _photos(ws)
        except ImageLabError as exc:
            why = f"efficientnet_lite0:imagenet unavailable: {exc}"
            return results + [Result(ISSUE, f"cats-dogs efficientnet_lite0 exports (skipped: "
                                            f"{why})", 0.0, "", detail={"skipped": why})]
        return results + _measure(ws, run_id, dataset, "cats-dogs efficientnet_lite0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
