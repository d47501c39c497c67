"""``python -m core labels …``: export, import, history, undo, revert."""

from __future__ import annotations

import time
from pathlib import Path

from core.cli.output import emit, table
from core.errors import ImageLabError
from core.labels import history as hist
from core.labels import io as label_io


def register(sub, common) -> None:
    """Add the ``labels export|import|history|undo|revert`` commands to the subparsers ``sub``,
    sharing the ``common`` options."""
    p = sub.add_parser("labels", help="export, import, history, undo and revert labels",
                       description="Labels of a dataset: every change is an event in an action, "
                                   "and every action can be undone.")
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    q = lsub.add_parser("export", parents=[common], help="write labels as CSV/JSON, or the dataset "
                        "as an ImageFolder tree or zip")
    q.add_argument("name", help="dataset name")
    q.add_argument("--out", required=True, metavar="PATH",
                   help="FILE.csv or FILE.json (path,label,split); with --tree a folder or FILE.zip")
    q.add_argument("--tree", action="store_true",
                   help="export images as <split>/<class>/<file> (a folder, or a zip if --out ends in .zip)")
    q.add_argument("--include-excluded", action="store_true",
                   help="with --tree: also export images excluded from training")
    q.set_defaults(func=cmd_export)

    q = lsub.add_parser("import", parents=[common],
                        help="apply a CSV/JSON label file; only rows that differ change, as one action")
    q.add_argument("name", help="dataset name")
    q.add_argument("file", help="a file written by `labels export` (path,label[,split])")
    q.add_argument("--user", help="name recorded on the action (default $IMAGELAB_USER or the OS user)")
    q.set_defaults(func=cmd_import)

    q = lsub.add_parser("history", parents=[common], help="actions of a dataset, or the label "
                        "events of one image or class")
    q.add_argument("name", help="dataset name")
    q.add_argument("--image", type=int, metavar="ID", help="the events of one image")
    q.add_argument("--class", dest="class_name", metavar="NAME", help="the events touching one class")
    q.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    q.set_defaults(func=cmd_history)

    q = lsub.add_parser("undo", parents=[common], help="undo the last action (as a new action)")
    q.add_argument("name", help="dataset name")
    q.add_argument("--user")
    q.set_defaults(func=cmd_undo)

    q = lsub.add_parser("revert", parents=[common],
                        help="bring labels back to an earlier label version (as a new action)")
    q.add_argument("name", help="dataset name")
    q.add_argument("--version", type=int, required=True, help="a label version (see `labels history`)")
    q.add_argument("--user")
    q.set_defaults(func=cmd_revert)


def cmd_export(args, ws) -> int:
    """``labels export NAME --out FILE``: labels as CSV or JSON, or with ``--tree`` the images as
    an ImageFolder tree or zip."""
    out = Path(args.out)
    if args.tree:
        fn = label_io.export_zip if out.suffix.lower() == ".zip" else label_io.export_imagefolder
        res = fn(ws, args.name, out, include_excluded=args.include_excluded).to_dict()
        emit(args, res, lambda r: (f"exported {r['images']} images of {len(r['classes'])} classes "
                                   f"to {r['out']} (left out: {r['skipped_unlabelled']} unlabelled, "
                                   f"{r['skipped_excluded']} excluded)"))
        return 0
    if out.suffix.lower() not in (".csv", ".json"):
        raise ImageLabError(f"--out must end in .csv or .json (or use --tree), not {out.name!r}")
    n = label_io.export_labels(ws, args.name, out)
    emit(args, {"dataset": args.name, "out": str(out), "rows": n},
         lambda d: f"wrote {d['rows']} labels of {d['dataset']!r} to {d['out']}")
    return 0


def cmd_import(args, ws) -> int:
    """``labels import NAME FILE``: apply a CSV/JSON of labels (and splits) as one undoable
    action."""
    res = label_io.import_labels(ws, args.name, args.file, user=args.user).to_dict()
    emit(args, res, lambda r: (
        f"read {r['rows']} rows: changed {r['changed_labels']} labels and {r['changed_splits']} "
        f"splits" + (f", new classes {', '.join(r['new_classes'])}" if r["new_classes"] else "")
        + (f" (action #{r['action_id']}, label version {r['label_version']})" if r["action_id"]
           else " (nothing differed; no action recorded)")))
    return 0


def cmd_history(args, ws) -> int:
    """``labels history NAME``: recent actions, or the label events of one image (``--image``) or
    class."""
    if args.image is not None or args.class_name is not None:
        events = [e.to_dict() for e in hist.label_history(
            ws, args.name, image_id=args.image, class_name=args.class_name, limit=args.limit)]
        emit(args, {"dataset": args.name, "events": events}, lambda d: table(
            [{**e, "when": _when(e["created_at"]), "old": _lab(e["old_label"]),
              "new": _lab(e["new_label"]), "undone": "yes" if e["undone"] else ""}
             for e in d["events"]],
            ["version", "action_id", "kind", "when", "user", "image_id", "old", "new", "undone"]))
        return 0
    actions = [a.to_dict() for a in hist.list_actions(ws, args.name, limit=args.limit)]
    emit(args, {"dataset": args.name, "actions": actions}, lambda d: table(
        [{**a, "when": _when(a["created_at"]), "undone_by": a["undone_by"] or "",
          "version": a["label_version"] or ""} for a in d["actions"]],
        ["id", "kind", "when", "user", "label_events", "version", "undone_by", "description"]))
    return 0


def cmd_undo(args, ws) -> int:
    """``labels undo NAME``: undo the last action that is not undone yet, as a new action."""
    res = hist.undo_last_action(ws, args.name, user=args.user).to_dict()
    emit(args, res, lambda r: (f"undid it as action #{r['action_id']}: {r['changed']} labels and "
                               f"{r['other_changes']} other changes restored; label version "
                               f"{r['label_version']}"))
    return 0


def cmd_revert(args, ws) -> int:
    """``labels revert NAME --version V``: set every label back to how it was at version V, as
    a new action."""
    res = hist.revert_to_version(ws, args.name, args.version, user=args.user).to_dict()
    emit(args, res, lambda r: (f"reverted {r['changed']} labels to version {args.version}"
                               if r["action_id"] else "labels already match that version"))
    return 0


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _lab(label: str | None) -> str:
    return "(unlabelled)" if label is None else label
