"""Labels in and out: CSV and JSON (``path,label,split``), ImageFolder trees and zips.

``path`` is the image's path inside the workspace (unique within a dataset), so an exported
file can be edited and imported back: ``import_labels`` changes only the rows whose label
(or split) differs, as one action, all or nothing.
An empty label means unlabelled; a label naming no class creates the class. CSV cells are escaped against CSV injection as OWASP advises (``csv_cell``, also used
for prediction CSVs): ``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)``, so a
spreadsheet shows it as text. ``read_label_file`` undoes it: exports import back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import ImageLabError
from core.labels.classes import validate_class_name
from core.labels.common import class_names_by_id, current_user, dataset_id, live_classes
from core.labels.edits import SPLITS, begin_edit, class_event, commit_staged
from core.store.workspace import Workspace, atomic_write_bytes
from core.units import MIB, format_size

FIELDS = ("path", "label", "split")
MAX_IMPORT_BYTES = 200 * MIB
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` made safe for a CSV cell a spreadsheet may open (OWASP CSV injection).

    A string that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return,
    after any leading ``'``, gets a ``'`` in front, so it is shown as text and never run
    as a formula. Other values (numbers, ``None``) are returned as they are.
    ``csv_uncell`` undoes it exactly.
    """
    if isinstance(value, str) and value.lstrip("'").startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_uncell(value):
    """The value ``csv_cell`` was given, from the cell it wrote."""
    if (isinstance(value, str) and value.startswith("'")
            and value.lstrip("'").startswith(_FORMULA_START)):
        return value[1:]
    return value


@dataclass
class ImportResult:
    """What ``import_labels`` did: rows read, labels and splits changed, classes it
    created, the action's id (``None`` if nothing changed) and the label version after it.
    """
    rows: int                 # rows read
    changed_labels: int
    changed_splits: int
    new_classes: list[str]
    action_id: int | None
    label_version: int

    def to_dict(self) -> dict:
        """The result as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass
class TreeExport:
    """What an ImageFolder export wrote: where (``out``), how many images, how many were
    left out as unlabelled or excluded, and the class names.
    """
    out: str
    images: int
    skipped_unlabelled: int
    skipped_excluded: int
    classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The export summary as a plain dict (JSON-ready)."""
        return asdict(self)


def label_rows(ws: Workspace, dataset: str) -> list[dict]:
    """Every image as ``{"path", "label", "split"}`` (label ``""`` = unlabelled)."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        return [{"path": r[0], "label": names.get(r[1], "") if r[1] is not None else "",
                 "split": r[2]} for r in conn.execute(
            "SELECT path, class_id, split FROM images WHERE dataset_id = ? ORDER BY id", (ds_id,))]


def export_labels(ws: Workspace, dataset: str, out: str | Path, fmt: str | None = None) -> int:
    """Write the labels as CSV or JSON (chosen by ``fmt`` or the file's suffix); return rows.

    CSV cells that a spreadsheet would run as a formula get a leading ``'`` (``csv_cell``).
    """
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    rows = label_rows(ws, dataset)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
        data = buf.getvalue()
    elif fmt == "json":
        data = json.dumps({"dataset": dataset, "labels": rows}, indent=1, ensure_ascii=False) + "\n"
    else:
        raise ImageLabError(f"unknown label file format {fmt!r}; use .csv or .json")
    atomic_write_bytes(out, data.encode("utf-8"))
    return len(rows)


def read_label_file(path: str | Path) -> list[dict]:
    """The rows of a CSV or JSON label file, as dicts with ``path``, ``label`` and maybe ``split``.

    JSON is chosen by the ``.json`` suffix (a list of objects, or ``{"labels": [...]}``);
    anything else as CSV with a header (``csv_uncell`` on each cell). Raises ``ImageLabError``
    if the file is missing, over ``MAX_IMPORT_BYTES``, not UTF-8, or not in either shape.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ImageLabError(f"{path} is larger than {format_size(MAX_IMPORT_BYTES)}")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImageLabError(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise ImageLabError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ImageLabError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImageLabError(f"{path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ImageLabError(f"{path}: the JSON is nested too deeply to read") from None
        rows = doc.get("labels") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ImageLabError(f"{path}: expected a list of {{path, label, split}} objects")
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "path" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise ImageLabError(f"{path}: the CSV needs a header with at least path,label "
                                "(and optionally split)")
        rows = [{k: csv_uncell(v) for k, v in r.items()} for r in reader]
    return rows


def import_labels(ws: Workspace, dataset: str, path: str | Path, *,
                  user: str | None = None) -> ImportResult:
    """Apply a label file: only rows whose label or split differ change, as one action."""
    rows = read_label_file(path)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        images = {r[1]: (int(r[0]), r[2], r[3]) for r in conn.execute(
            "SELECT id, path, class_id, split FROM images WHERE dataset_id = ?", (ds_id,))}
        classes = live_classes(conn, ds_id)
        seen: set[str] = set()
        unknown, bad_split = [], []
        labels, splits, new_classes = [], [], []
        for n, row in enumerate(rows, start=2):
            p = str(row.get("path") or "").strip()
            if p in seen:
                raise ImageLabError(f"{path}: {p!r} appears twice (line {n})")
            seen.add(p)
            if p not in images:
                unknown.append(p)
                continue
            image_id, class_id, split = images[p]
            label = str(row.get("label") if row.get("label") is not None else "").strip()
            new_split = str(row.get("split") or "").strip() or split
            if new_split not in SPLITS:
                bad_split.append(f"{p!r}: {new_split!r}")
            if label and label not in classes:
                validate_class_name(label)
                pos = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM classes "
                                   "WHERE dataset_id = ?", (ds_id,)).fetchone()[0]
                classes[label] = int(conn.execute(
                    "INSERT INTO classes(dataset_id, name, position) VALUES (?, ?, ?)",
                    (ds_id, label, pos)).lastrowid)
                new_classes.append(label)
            new_id = classes[label] if label else None
            if new_id != class_id:
                labels.append((image_id, class_id, new_id))
            if new_split != split:
                splits.append((image_id, "split", new_split))
        if unknown:
            raise ImageLabError(f"{path}: {len(unknown)} paths are not in {dataset!r}, e.g. "
                                f"{unknown[0]!r}; nothing was changed")
        if bad_split:
            raise ImageLabError(f"{path}: unknown split {bad_split[0]}; use train, val or test")
        begin_edit(conn)
        conn.executemany("INSERT INTO temp._lab(image_id, expected, new) VALUES (?, ?, ?)", labels)
        conn.executemany("INSERT INTO temp._img(image_id, field, new) VALUES (?, ?, ?)", splits)
        result = commit_staged(conn, ds_id, kind="import_labels",
                               description=f"import labels from {Path(path).name}: "
                                           f"{len(labels)} labels, {len(splits)} splits",
                               user=current_user(user))
        if result.action_id is not None:
            for name in new_classes:
                class_event(conn, result.action_id, classes[name], "created", None, name)
    return ImportResult(len(rows), result.changed, result.other_changes, new_classes,
                        result.action_id, result.label_version)


_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_folder_name(name: str) -> str:
    """A class name as a folder name: no separators, no leading dots, never empty."""
    cleaned = _UNSAFE.sub("_", name).strip(" .") or "_"
    return cleaned[:100]


def _tree_members(ws: Workspace, dataset: str, include_excluded: bool):
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        rows = conn.execute("SELECT id, path, class_id, split, excluded FROM images "
                            "WHERE dataset_id = ? ORDER BY id", (ds_id,)).fetchall()
    folders: dict[str, str] = {}
    used: set[str] = set()
    members, unl, exc = [], 0, 0
    for image_id, rel, cid, split, excluded in rows:
        if cid is None:
            unl += 1
            continue
        if excluded and not include_excluded:
            exc += 1
            continue
        name = names[cid]
        if name not in folders:  # two names that clean to the same folder stay apart
            base = folder = safe_folder_name(name)
            k = 2
            while folder in used:
                folder, k = f"{base}_{k}", k + 1
            folders[name] = folder
            used.add(folder)
        fname = f"{image_id}_{Path(rel).name}"
        members.append((ws.resolve(rel), f"{split}/{folders[name]}/{fname}", name, split))
    return members, unl, exc, sorted(folders)


def export_imagefolder(ws: Workspace, dataset: str, out_dir: str | Path, *,
                       include_excluded: bool = False) -> TreeExport:
    """Write ``out_dir/<split>/<class>/<id>_<file>`` (torchvision ImageFolder per split)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ImageLabError(f"{out_dir} exists and is not empty; choose a new folder")
    members, unl, exc, classes = _tree_members(ws, dataset, include_excluded)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for src, rel, _, _ in members:
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        _write_labels_csv(tmp / "labels.csv", members)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TreeExport(str(out_dir), len(members), unl, exc, classes)


def export_zip(ws: Workspace, dataset: str, out: str | Path, *,
               include_excluded: bool = False) -> TreeExport:
    """The ImageFolder tree, as one zip file (written to a temp file, then renamed)."""
    out = Path(out)
    members, unl, exc, classes = _tree_members(ws, dataset, include_excluded)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for src, rel, _, _ in members:
                zf.write(src, f"{dataset}/{rel}")
            buf = io.StringIO()
            _labels_csv(buf, members)
            zf.writestr(f"{dataset}/labels.csv", buf.getvalue())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return TreeExport(str(out), len(members), unl, exc, classes)


def _labels_csv(fh, members) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["file", "label", "split"])
    for _, rel, label, split in members:
        w.writerow([csv_cell(rel), csv_cell(label), split])


def _write_labels_csv(path: Path, members) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        _labels_csv(fh, members)
