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
                       description="Export to ONNX (fp32 or int8) or a torch.export program "
                                   "(.pt2). The model takes uint8 images N×H×W×C at its size "
                                   "and returns calibrated probabilities (scaling, mean/std, "
                                   "temperature and softmax inside); its bundle (model, "
                                   "classes, preprocessing, predict.py) is run on the files "
                                   "of the run's validation split and compared with the app's "
                                   "predictions: an fp32 export must agree on every answer. "
                                   "int8 is made with dynamic and static quantisation and "
                                   "refused if it loses more than 1 point of accuracy or "
                                   "changes more than 2% of answers (--accept-int8-loss keeps "
                                   "it anyway). Figures go to export_check.json beside it.")
    p.add_argument("run_id")
    p.add_argument("--format", default="onnx", choices=["onnx", "pt2"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="int8: ONNX through onnxruntime's quantisation (default fp32)")
    p.add_argument("--out", help="output file (default: exports/RUN/model.onnx, model.pt2 "
                                 "or model-int8.onnx in the workspace)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest probability difference allowed for fp32 (default 1e-4)")
    p.add_argument("--accept-int8-loss", action="store_true",
                   help="keep an int8 export outside the limits (recorded as an override)")
    p.add_argument("--max-images", type=int, default=2000,
                   help="validation images checked from files (default 2000)")
    p.set_defaults(func="core.cli.commands.evaluate:cmd_export")
