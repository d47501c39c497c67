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
    """``export RUN --format F --out FILE``: a checked export and its bundle (``export_run``)."""
    result = export_run(ws, args.run_id, args.format, Path(args.out), tolerance=args.tolerance)
    emit(args, result.to_dict(), lambda r: (
        f"exported {r['format']} to {r['path']} ({format_size(r['size_bytes'])}); checked on "
        f"{r['num_images_checked']} images: max |Δlogit| {r['max_abs_diff']:.2e} "
        f"(tolerance {r['tolerance']:g}); bundle {r['bundle']}"))
    return 0
