"""Handlers of ``python -m core evaluate|predict|export`` (parsers: ``core/cli/evaluate.py``)."""

from __future__ import annotations

from pathlib import Path

from core.cli.output import StderrProgress, emit, log, table
from core.errors import ImageLabError
from core.evaluation.evaluate import evaluate_run
from core.inference.batch import predict_paths, rows_to_csv
from core.inference.run_export import export_run
from core.training.run_model import load_run_model
from core.units import format_size


def cmd_evaluate(args, ws) -> int:
    """``evaluate RUN``: the run's report on a split (``evaluate_run``); with ``--json`` curves are
    left out unless ``--full``."""
    report = evaluate_run(ws, args.run_id, args.dataset, args.split, refresh=args.refresh,
                          progress=StderrProgress())
    if args.json and not args.full:
        report = {k: v for k, v in report.items() if k not in ("roc", "pr", "calibration_uncalibrated")}
        report["calibration"] = {"ece": report["calibration"]["ece"]}

    def human(r):
        head = (f"run {r['run_id']} on {r['dataset']}/{r['split']}: accuracy {r['accuracy']:.4f} "
                f"over {r['num_samples']} images (macro F1 {r['macro']['f1']:.4f}, "
                f"ECE {r['calibration']['ece']:.4f})\n")
        rows = [{**c, **{k: f"{c[k]:.3f}" for k in ("precision", "recall", "f1")}}
                for c in r["per_class"]]
        return head + table(rows, ["class", "precision", "recall", "f1", "support"])

    emit(args, report, human)
    return 0


def cmd_predict(args, ws) -> int:
    """``predict RUN PATH…``: one row per image (prediction, confidence, every probability),
    optionally also as CSV."""
    if not 0 <= args.threshold <= 1:
        raise ImageLabError("--threshold must be between 0 and 1")
    lm = load_run_model(ws, args.run_id)
    rows = predict_paths(lm, args.paths, threshold=args.threshold, progress=StderrProgress())
    if args.csv:
        Path(args.csv).write_text(rows_to_csv(rows, lm.classes))
        log(f"wrote {len(rows)} rows to {args.csv}")
    emit(args, {"run_id": lm.run_id, "classes": lm.classes, "predictions": rows},
         lambda d: table([{**r, "confidence": "" if r["confidence"] is None else
                           f"{r['confidence']:.3f}"} for r in d["predictions"]],
                         ["path", "prediction", "confidence", "error"]))
    return 0


def cmd_export(args, ws) -> int:
    """``export RUN [--format F] [--precision P] [--out FILE]``: a checked export and its
    bundle (``export_run``), with its parity, latency and accuracy figures."""
    if args.max_images < 1:
        raise ImageLabError("--max-images must be at least 1")
    result = export_run(ws, args.run_id, args.format, Path(args.out) if args.out else None,
                        precision=args.precision, tolerance=args.tolerance,
                        accept_loss=args.accept_int8_loss, cap=args.max_images)
    emit(args, result.to_dict(), _export_text)
    return 0


def _export_text(r: dict) -> str:
    p, t = r["parity"], r["latency"]
    quant = f" ({r['quantization']})" if r["quantization"] else ""
    lines = [f"exported {r['format']} {r['precision']}{quant} to {r['path']} "
             f"({format_size(r['size_bytes'])}); bundle {r['bundle']}",
             f"from files: {p['images']} images of the {p['split']} split through predict.py: "
             f"top-1 agreement with the app {100 * p['top1_agreement']:.2f}%, max |Δp| "
             f"{p['max_prob_diff']:.2e}, accuracy {100 * p['accuracy_export']:.2f}% "
             f"(app {100 * p['accuracy_app']:.2f}%)",
             "latency: " + ", ".join(f"batch {b[1:]} p50 {v['p50_ms']:.2f} ms p95 "
                                     f"{v['p95_ms']:.2f} ms" for b, v in t.items())]
    for mode, v in r["int8"].get("variants", {}).items():
        lines.append(f"int8 {mode}: {format_size(v['size_bytes'])}, accuracy "
                     f"{100 * v['accuracy']:.2f}% (fp32 {100 * v['accuracy_fp32']:.2f}%), "
                     f"agreement with fp32 {100 * v['top1_agreement']:.2f}%, batch 1 p50 "
                     f"{v['latency']['b1']['p50_ms']:.2f} ms"
                     + (f" — {v['refusal']}" if v["refusal"] else ""))
    if r["override"]:
        lines.append(f"kept by --accept-int8-loss although {r['refusal']}")
    return "\n".join(lines)
