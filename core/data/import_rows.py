"""What an import's commit writes to the database, and the report it returns.

``write_import`` runs inside the writer's one transaction: it creates the dataset
(or finds it, when adding), its classes, one row per image, the import action with
each labelled image's initial label event, refreshed quality flags when adding, and
the stored import report. It returns the ``ImportReport`` shown to the user.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field

from core.data.catalog import create_dataset, ensure_classes
from core.data.prepare import Prepared, Skipped
from core.data.quality import exact_copies, refresh_flags

REPORT_LIST_MAX = 50     # duplicates, label conflicts and leaks listed in a report, each


@dataclass
class ImportReport:
    """The outcome of one import: what was added, skipped, and found along the way.

    ``to_dict()`` gives its JSON form (the CLI prints it; the Data page shows it).
    """
    name: str
    dataset_id: int
    added: int
    num_images: int          # images now in the dataset
    classes: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    source: str = ""
    notes: list[str] = field(default_factory=list)          # e.g. empty labels imported unlabelled
    duplicates: list[dict] = field(default_factory=list)    # exact copies (by content hash)
    label_conflicts: list[dict] = field(default_factory=list)  # same image under two labels
    leakage: list[dict] = field(default_factory=list)       # same image in two splits
    cache_size: int | None = None                           # side of the cache built at import

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data (skipped files as ``{path, reason}`` dicts)."""
        return asdict(self)


def write_import(conn: sqlite3.Connection, *, name: str, source: str, user: str, append: bool,
                 class_order: list[str], pending: list[Prepared], splits: list[str],
                 flags: list[int], batch_rel: str, skipped: list[Skipped], notes: list[str],
                 now: float) -> ImportReport:
    """Insert one import's rows on ``conn`` (an open write transaction); returns its report.

    ``pending``, ``splits`` and ``flags`` are parallel lists, one entry per image;
    ``class_order`` is the order new classes get; ``batch_rel`` is the batch folder
    (relative to the workspace root) whose images receive initial label events; ``now``
    is the Unix time stamped on every row. The report's ``seconds`` and ``cache_size``
    are left for the caller to fill.
    """
    if append:
        ds_id = int(conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()[0])
    else:
        ds_id = create_dataset(conn, name, source)
    class_ids = ensure_classes(conn, ds_id, class_order)
    conn.executemany(
        "INSERT INTO images(dataset_id, path, original_name, sha256, width, height, mode, "
        "format, num_bytes, split, class_id, added_at, phash, brightness, sharpness, "
        "mean_r, mean_g, mean_b, sq_r, sq_g, sq_b, flags) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [(ds_id, p.path, p.original_name, p.sha256, p.width, p.height, p.mode, p.format,
          p.num_bytes, split, class_ids.get(p.label) if p.label else None, now,
          p.stats.phash, p.stats.brightness, p.stats.sharpness, *p.stats.means,
          *p.stats.squares, flag)
         for p, split, flag in zip(pending, splits, flags)])
    labelled = [p.path for p in pending if p.label]
    if labelled:
        cur = conn.execute(
            "INSERT INTO actions(dataset_id, kind, description, user, created_at) "
            "VALUES (?, 'import', ?, ?, ?)",
            (ds_id, f"import of {len(pending)} images from {source}", user, now))
        action_id = cur.lastrowid
        conn.execute(
            "INSERT INTO label_events(action_id, image_id, old_class_id, new_class_id, "
            "created_at) SELECT ?, id, NULL, class_id, ? FROM images "
            "WHERE dataset_id = ? AND path LIKE ? AND class_id IS NOT NULL ORDER BY id",
            (action_id, now, ds_id, batch_rel + "/%"))
    if append:
        refresh_flags(conn, ds_id)
    duplicates, conflicts, leakage = exact_copies(conn, ds_id)
    total = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ?",
                         (ds_id,)).fetchone()[0]
    class_names = [r[0] for r in conn.execute(
        "SELECT name FROM classes WHERE dataset_id = ? AND deleted_at IS NULL "
        "ORDER BY position, name", (ds_id,))]
    report = ImportReport(name, ds_id, len(pending), int(total), class_names, list(skipped),
                          source=source, notes=list(notes))
    conn.execute("INSERT INTO import_reports(dataset_id, source, added, report_json, "
                 "created_at) VALUES (?, ?, ?, ?, ?)",
                 (ds_id, source, report.added,
                  json.dumps({"skipped": [asdict(s) for s in skipped], "notes": notes}), now))
    report.duplicates = duplicates[:REPORT_LIST_MAX]
    report.label_conflicts = conflicts[:REPORT_LIST_MAX]
    report.leakage = leakage[:REPORT_LIST_MAX]
    return report
