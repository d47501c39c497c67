"""``python -m core evaluate|predict|export``: results, predictions and checked exports.

The parsers; the handlers are in ``core/cli/commands/evaluate.py``.
"""

from __future__ import annotations


def register(sub, common) -> None:
    """Add the ``evaluate``, ``predict`` and ``export`` commands to the subparsers ``sub``, sharing
    the ``common`` options."""
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
    p.set_defaults(func="core.cli.commands.evaluate:cmd_evaluate")

    p = sub.add_parser("predict", parents=[common], help="predict images, folders or zips",
                       description="One row per image with the prediction and every class's "
                                   "probability. Unreadable images get an error, not a crash.")
    p.add_argument("run_id")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="answer 'unknown' below this confidence (0–1)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    p.set_defaults(func="core.cli.commands.evaluate:cmd_predict")

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
    p.set_defaults(func="core.cli.commands.evaluate:cmd_export")
