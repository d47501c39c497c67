"""``python -m core datasets …`` and ``python -m core samples …``."""

from __future__ import annotations

from core.cli.output import StderrProgress, emit, log, table
from core.data import catalog
from core.data.files import shown_name
from core.data.net import redact_url
from core.data.quality import quality_report
from core.data.samples import SAMPLES, ensure_samples
from core.data.sources import ImportOptions, import_source
from core.errors import ImageLabError


def register(sub, common) -> None:
    """Add the ``datasets list|info|import|delete`` and ``samples ensure|list`` commands to
    ``sub``, sharing the ``common`` options."""
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
        description="Import images into the workspace, or add them to a dataset with --append. "
                    "SOURCE is a folder (ImageFolder layout, optionally under train/ val/ test/, "
                    "or flat), an archive (zip, tar, tar.gz, tgz), a CSV/JSON manifest of "
                    "path|url,label[,split], an http(s) URL of an archive or manifest, a "
                    "SQLAlchemy URL with --query, torchvision:NAME (MNIST, FashionMNIST, KMNIST, "
                    "CIFAR10, CIFAR100, SVHN) or a built-in sample: "
                    + ", ".join(f"sample:{k}" for k in SAMPLES) + ".")
    q.add_argument("source", help="where the images come from (see above)")
    q.add_argument("--name", help="dataset name (default: derived from the source)")
    q.add_argument("--append", action="store_true", help="add to the existing dataset --name")
    q.add_argument("--seed", type=int, default=0, help="seed for the train/val/test split (default 0)")
    q.add_argument("--label", help="put every image in this class (flat folders, single images)")
    q.add_argument("--query", help="SQL sources: a SELECT returning image bytes (or a path) and a label")
    q.add_argument("--root", help="torchvision: folder that holds (or receives) the dataset files")
    q.add_argument("--no-download", action="store_true",
                   help="torchvision: never download, only read --root")
    q.add_argument("--limit", type=int, help="torchvision: at most this many images per split")
    q.add_argument("--sha256", help="URL: expected SHA-256 of the download")
    q.add_argument("--max-mb", type=float, help="URL: size cap in MiB (default 2048 MiB = 2 GiB)")
    q.add_argument("--timeout", type=float, help="URL: time cap in seconds (default 30)")
    q.add_argument("--allow-private-urls", action="store_true", default=None,
                   help="URL: allow loopback and private addresses (also "
                        "IMAGELAB_ALLOW_PRIVATE_URLS=1)")
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
    """``datasets list``: every dataset with its image and labelled counts, classes and source."""
    data = [d.to_dict() for d in catalog.list_datasets(ws)]
    emit(args, data, lambda rows: table(
        [{**r, "classes": _short(r["classes"])} for r in rows],
        ["name", "num_images", "num_labelled", "classes", "source"]))
    return 0


def cmd_info(args, ws) -> int:
    """``datasets info NAME``: counts per class and split, label version, and the quality report."""
    info = catalog.dataset_info(ws, args.name).to_dict()
    info["quality"] = quality_report(ws, args.name).to_dict()

    def human(d):
        head = (f"{d['name']}: {d['num_images']} images, {len(d['classes'])} classes "
                f"(source {d['source']}, label version {d['label_version']})\n"
                f"splits: " + ", ".join(f"{k} {v}" for k, v in d["splits"].items()) + "\n")
        rows = d["per_class"] + ([{"class": "(unlabelled)", **d["unlabelled"],
                                   "total": sum(d["unlabelled"].values())}]
                                 if any(d["unlabelled"].values()) else [])
        q = d["quality"]
        quality = "quality: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in q["counts"].items())
        stats = (f"channel mean {q['channel_mean']}, std {q['channel_std']}"
                 if q["channel_mean"] else "")
        return head + table(rows, ["class", "total", "train", "val", "test"]) + \
            f"\n{quality}\n{stats}".rstrip()

    emit(args, info, human)
    return 0


def cmd_import(args, ws) -> int:
    """``datasets import SOURCE``: import (or with ``--append`` add) images; prints the import
    report, progress on stderr."""
    opts = ImportOptions(
        append=args.append, seed=args.seed, label=args.label, query=args.query, root=args.root,
        download=not args.no_download, limit=args.limit, sha256=args.sha256,
        max_bytes=int(args.max_mb * 1024 * 1024) if args.max_mb else None, timeout=args.timeout,
        allow_private_urls=args.allow_private_urls, count=args.count, size=args.size)
    log(f"importing {redact_url(shown_name(args.source))} …")
    report = import_source(ws, args.source, args.name, opts, progress=StderrProgress())
    emit(args, report.to_dict(), _human_report)
    return 0


def _human_report(r: dict) -> str:
    lines = [f"imported {r['added']} images into {r['name']!r} ({r['num_images']} in total, "
             f"{len(r['classes'])} classes) in {r['seconds']:.1f}s"]
    if r["skipped"]:
        lines.append(f"skipped {len(r['skipped'])} file(s):")
        lines += [f"  {s['path']}: {s['reason']}" for s in r["skipped"][:50]]
        if len(r["skipped"]) > 50:
            lines.append(f"  … and {len(r['skipped']) - 50} more (use --json for all)")
    for key, what in (("duplicates", "exact duplicate groups"),
                      ("label_conflicts", "images under two labels"),
                      ("leakage", "images in two splits (leakage)")):
        if r.get(key):
            lines.append(f"{what}: {len(r[key])}")
    lines += [f"note: {n}" for n in r.get("notes", [])[:20]]
    return "\n".join(lines)


def cmd_delete(args, ws) -> int:
    """``datasets delete NAME --yes``: delete a dataset with its images and labels; raises
    ``ImageLabError`` without ``--yes``."""
    if not args.yes:
        raise ImageLabError(f"deleting {args.name!r} removes its images and labels; "
                            "add --yes to confirm")
    catalog.delete_dataset(ws, args.name)
    emit(args, {"deleted": args.name}, lambda d: f"deleted dataset {d['deleted']!r}")
    return 0


def cmd_samples_ensure(args, ws) -> int:
    """``samples ensure``: import every built-in sample that is missing; prints what was
    prepared."""
    reports = ensure_samples(ws, progress=StderrProgress())
    for r in reports:
        log(f"prepared sample {r.name!r}: {r.added} images in {r.seconds:.1f}s")
    data = {"prepared": [r.to_dict() for r in reports],
            "datasets": [d.name for d in catalog.list_datasets(ws)]}
    emit(args, data, lambda d: (f"prepared {len(d['prepared'])} sample(s); "
                                f"datasets: {', '.join(d['datasets'])}"))
    return 0


def cmd_samples_list(args, ws) -> int:
    """``samples list``: the built-in samples, their default names, descriptions and classes."""
    data = [{"source": f"sample:{s.key}", "default_name": s.default_name,
             "description": s.description, "classes": s.classes} for s in SAMPLES.values()]
    emit(args, data, lambda rows: table([{**r, "classes": _short(r["classes"])} for r in rows],
                                        ["source", "default_name", "description"]))
    return 0


def _short(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", … (+{len(names) - limit})" if len(names) > limit else "")
