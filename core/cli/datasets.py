"""``python -m core datasets …`` and ``python -m core samples …``."""

from __future__ import annotations

from core.cli.output import StderrProgress, emit, log, table
from core.data import catalog
from core.data.samples import SAMPLES, ensure_samples, import_sample
from core.errors import ImageLabError


def register(sub, common) -> None:
    p = sub.add_parser("datasets", help="list, describe and import datasets",
                       description="Datasets in the workspace.")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    q = dsub.add_parser("list", parents=[common], help="list datasets with image counts and classes")
    q.set_defaults(func=cmd_list)

    q = dsub.add_parser("info", parents=[common],
                        help="counts per class and split for one dataset")
    q.add_argument("name", help="dataset name (see `datasets list`)")
    q.set_defaults(func=cmd_info)

    q = dsub.add_parser(
        "import", parents=[common], help="import a dataset from a source",
        description="Import images into the workspace. Sources: "
                    + ", ".join(f"sample:{k}" for k in SAMPLES) + ".")
    q.add_argument("source", help="where the images come from, e.g. sample:digits")
    q.add_argument("--name", help="dataset name (default: derived from the source)")
    q.add_argument("--seed", type=int, default=0, help="seed for the train/val/test split (default 0)")
    q.add_argument("--count", type=int, help="sample:shapes only: number of images (default 3000)")
    q.add_argument("--size", type=int, help="sample:shapes only: image side in pixels (default 32)")
    q.set_defaults(func=cmd_import)

    q = dsub.add_parser("delete", parents=[common], help="delete a dataset and its image files")
    q.add_argument("name")
    q.add_argument("--yes", action="store_true", help="required: confirm the deletion")
    q.set_defaults(func=cmd_delete)

    p = sub.add_parser("samples", help="prepare the built-in sample datasets")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = ssub.add_parser("ensure", parents=[common],
                        help="import every built-in sample that is missing (idempotent)")
    q.set_defaults(func=cmd_samples_ensure)
    q = ssub.add_parser("list", parents=[common], help="list the built-in samples")
    q.set_defaults(func=cmd_samples_list)


def cmd_list(args, ws) -> int:
    data = [d.to_dict() for d in catalog.list_datasets(ws)]
    emit(args, data, lambda rows: table(
        [{**r, "classes": _short(r["classes"])} for r in rows],
        ["name", "num_images", "num_labelled", "classes", "source"]))
    return 0


def cmd_info(args, ws) -> int:
    info = catalog.dataset_info(ws, args.name).to_dict()

    def human(d):
        head = (f"{d['name']}: {d['num_images']} images, {len(d['classes'])} classes "
                f"(source {d['source']}, label version {d['label_version']})\n"
                f"splits: " + ", ".join(f"{k} {v}" for k, v in d["splits"].items()) + "\n")
        rows = d["per_class"] + ([{"class": "(unlabelled)", **d["unlabelled"],
                                   "total": sum(d["unlabelled"].values())}]
                                 if any(d["unlabelled"].values()) else [])
        return head + table(rows, ["class", "total", "train", "val", "test"])

    emit(args, info, human)
    return 0


def cmd_import(args, ws) -> int:
    if not args.source.startswith("sample:"):
        raise ImageLabError(f"unsupported source {args.source!r}; this version imports "
                            + ", ".join(f"sample:{k}" for k in SAMPLES))
    log(f"importing {args.source} …")
    report = import_sample(ws, args.source, args.name, seed=args.seed, count=args.count,
                           size=args.size, progress=StderrProgress())
    emit(args, report.to_dict(), lambda r: (
        f"imported {r['added']} images into {r['name']!r} ({r['num_images']} in total, "
        f"{len(r['classes'])} classes) in {r['seconds']:.1f}s"
        + (f"; skipped {len(r['skipped'])}" if r["skipped"] else "")))
    return 0


def cmd_delete(args, ws) -> int:
    if not args.yes:
        raise ImageLabError(f"deleting {args.name!r} removes its images and labels; "
                            "add --yes to confirm")
    catalog.delete_dataset(ws, args.name)
    emit(args, {"deleted": args.name}, lambda d: f"deleted dataset {d['deleted']!r}")
    return 0


def cmd_samples_ensure(args, ws) -> int:
    reports = ensure_samples(ws, progress=StderrProgress())
    for r in reports:
        log(f"prepared sample {r.name!r}: {r.added} images in {r.seconds:.1f}s")
    data = {"prepared": [r.to_dict() for r in reports],
            "datasets": [d.name for d in catalog.list_datasets(ws)]}
    emit(args, data, lambda d: (f"prepared {len(d['prepared'])} sample(s); "
                                f"datasets: {', '.join(d['datasets'])}"))
    return 0


def cmd_samples_list(args, ws) -> int:
    data = [{"source": f"sample:{s.key}", "default_name": s.default_name,
             "description": s.description, "classes": s.classes} for s in SAMPLES.values()]
    emit(args, data, lambda rows: table([{**r, "classes": _short(r["classes"])} for r in rows],
                                        ["source", "default_name", "description"]))
    return 0


def _short(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", … (+{len(names) - limit})" if len(names) > limit else "")
