"""``python -m core evaluate|predict|export``: results, predictions and checked exports."""

from __future__ import annotations

from pathlib import Path

from core.cli.output import StderrProgress, emit, log, table
from core.errors import ImageLabError


def register(sub, common) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="metrics of a finished run on a split",
                       description="Accuracy, per-class precision/recall/F1, the confusion matrix "
                                   "(rows = true class), ROC/PR, calibration. Computed once per "
                                   "run, dataset, split and label version, then reused.")
    p.add_argument("run_id")
    p.add_argument("--dataset", help="another dataset with the same class names (default: the run's)")
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all"])
    p.add_argument("--refresh", action="store_true", help="recompute even if a result is stored")
    p.add_argument("--full", action="store_true",
                   help="with --json: include ROC/PR curves and calibration bins")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", parents=[common], help="predict images, folders or zips",
                       description="One row per image with the prediction and every class's "
                                   "probability. Unreadable images get an error, not a crash.")
    p.add_argument("run_id")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="answer 'unknown' below this confidence (0–1)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", parents=[common], help="export a run's model, checked",
                       description="Export to ONNX or a torch.export program (.pt2). The export "
                                   "is reloaded and compared with PyTorch on real images of the "
                                   "run's dataset; it is refused above the tolerance. A bundle "
                                   "zip (model, classes, preprocessing, predict.py) is written "
                                   "beside it.")
    p.add_argument("run_id")
    p.add_argument("--format", required=True, choices=["onnx", "pt2"])
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.set_defaults(func=cmd_export)


def cmd_evaluate(args, ws) -> int:
    from core.evaluation.evaluate import evaluate_run
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
    from core.inference.batch import predict_paths, rows_to_csv
    from core.inference.predictor import load_run_model
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
    from core.inference.exporting import export_run
    result = export_run(ws, args.run_id, args.format, Path(args.out), tolerance=args.tolerance)
    emit(args, result.to_dict(), lambda r: (
        f"exported {r['format']} to {r['path']} ({r['size_bytes'] / 1e6:.1f} MB); checked on "
        f"{r['num_images_checked']} images: max |Δlogit| {r['max_abs_diff']:.2e} "
        f"(tolerance {r['tolerance']:g}); bundle {r['bundle']}"))
    return 0
