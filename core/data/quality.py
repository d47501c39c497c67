"""Image quality: content flags and the dataset quality report.

The per-image statistics these are made from (perceptual hash, brightness, sharpness,
channel means) are measured at import by ``core.data.image_stats`` and stored in the
``images`` table; ``content_flags`` turns one image's brightness and sharpness into
flags.

``refresh_flags`` recomputes the content flags of a whole dataset in the caller's
transaction (exact duplicate, near-duplicate, dark, bright, blurry);
``quality_report`` adds what depends on labels and splits (the same image under
two labels, the same image in two splits), the files skipped at import, and the
dataset's per-channel mean and standard deviation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from core.data.catalog import get_dataset_id
from core.data.phash import near_groups
from core.store.workspace import Workspace

FLAG_DUPLICATE = 1
FLAG_NEAR_DUPLICATE = 2
FLAG_DARK = 4
FLAG_BRIGHT = 8
FLAG_BLURRY = 16
FLAGS = {"duplicate": FLAG_DUPLICATE, "near-duplicate": FLAG_NEAR_DUPLICATE, "dark": FLAG_DARK,
         "bright": FLAG_BRIGHT, "blurry": FLAG_BLURRY}

DARK_BELOW = 30.0        # mean luma, 0-255
BRIGHT_ABOVE = 225.0
BLURRY_BELOW = 15.0      # variance of the Laplacian of the luma (at most 128 px side)
NEAR_DISTANCE = 4        # dHash bits


def content_flags(brightness: float, sharpness: float) -> int:
    """The bit mask of ``FLAG_DARK``, ``FLAG_BRIGHT`` and ``FLAG_BLURRY`` for one image.

    ``brightness`` is the mean luma (0-255), ``sharpness`` the variance of the Laplacian;
    the thresholds are ``DARK_BELOW``, ``BRIGHT_ABOVE`` and ``BLURRY_BELOW``.
    """
    f = 0
    if brightness < DARK_BELOW:
        f |= FLAG_DARK
    if brightness > BRIGHT_ABOVE:
        f |= FLAG_BRIGHT
    if sharpness < BLURRY_BELOW:
        f |= FLAG_BLURRY
    return f


def refresh_flags(conn, dataset_id: int) -> None:
    """Recompute every image's content flags in the caller's transaction."""
    rows = conn.execute("SELECT id, sha256, phash, brightness, sharpness, flags FROM images "
                        "WHERE dataset_id = ? ORDER BY id", (dataset_id,)).fetchall()
    if not rows:
        return
    flags = dataset_flags([r["sha256"] for r in rows], [r["phash"] for r in rows],
                          [r["brightness"] for r in rows], [r["sharpness"] for r in rows])
    conn.executemany("UPDATE images SET flags = ? WHERE id = ?",
                     [(f, r["id"]) for r, f in zip(rows, flags) if f != r["flags"]])


def dataset_flags(shas: list[str], phashes: list, brightness: list, sharpness: list) -> list[int]:
    """The content flags of every image of a dataset, from its stored statistics: exact
    duplicates (same content hash), near-duplicates (perceptual hashes within
    ``NEAR_DISTANCE`` bits, not merely exact copies), dark, bright and blurry."""
    flags = [0 if b is None else content_flags(b, s or 0.0) for b, s in zip(brightness, sharpness)]
    by_sha: dict[str, list[int]] = {}
    for i, sha in enumerate(shas):
        by_sha.setdefault(sha, []).append(i)
    for group in by_sha.values():
        if len(group) > 1:
            for i in group:
                flags[i] |= FLAG_DUPLICATE
    hashed = [i for i, h in enumerate(phashes) if h is not None]
    for group in near_duplicate_groups(hashed, [phashes[i] for i in hashed], shas.__getitem__):
        for i in group:
            flags[i] |= FLAG_NEAR_DUPLICATE
    return flags


def near_duplicate_groups(ids: list[int], phashes: list[int], sha_of) -> list[list[int]]:
    """Groups of ``ids`` whose perceptual hashes lie within ``NEAR_DISTANCE`` bits,
    leaving out groups that are merely exact copies (one content hash, ``sha_of(id)``)."""
    if not ids:
        return []
    groups = near_groups(np.array(ids, dtype=np.int64), np.array(phashes, dtype=np.int64),
                         NEAR_DISTANCE)
    return [g for g in groups if len({sha_of(i) for i in g}) > 1]


@dataclass
class QualityReport:
    """What ``quality_report`` found in one dataset; every list holds image ids or groups.

    ``counts`` gives each list's full length (the lists themselves are capped);
    ``channel_mean`` and ``channel_std`` are per channel, on pixel values in 0-1 (one value
    when every image is grayscale).
    """
    dataset: str
    num_images: int
    skipped: list[dict] = field(default_factory=list)        # corrupt/unreadable files at import
    duplicates: list[dict] = field(default_factory=list)     # {sha256, image_ids, names}
    label_conflicts: list[dict] = field(default_factory=list)  # {sha256, image_ids, labels}
    leakage: list[dict] = field(default_factory=list)        # {sha256, image_ids, splits}
    near_duplicates: list[dict] = field(default_factory=list)  # {image_ids, labels}
    dark: list[int] = field(default_factory=list)
    bright: list[int] = field(default_factory=list)
    blurry: list[int] = field(default_factory=list)
    channel_mean: list[float] = field(default_factory=list)
    channel_std: list[float] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data."""
        return asdict(self)


def exact_copies(conn, ds_id: int) -> tuple[list[dict], list[dict], list[dict]]:
    """The dataset's exact duplicates (same content hash), with those among them that
    carry two labels (conflicts) or sit in two splits (leakage)."""
    rows = conn.execute(
        "SELECT i.sha256, i.id, i.original_name, i.split, c.name AS label FROM images i "
        "LEFT JOIN classes c ON c.id = i.class_id WHERE i.dataset_id = ? AND i.sha256 IN "
        "(SELECT sha256 FROM images WHERE dataset_id = ? GROUP BY sha256 HAVING COUNT(*) > 1) "
        "ORDER BY i.sha256, i.id", (ds_id, ds_id)).fetchall()
    duplicates, conflicts, leakage = [], [], []
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r["sha256"], []).append(r)
    for sha, members in groups.items():
        ids = [m["id"] for m in members]
        duplicates.append({"sha256": sha, "image_ids": ids,
                           "names": [m["original_name"] for m in members]})
        labels = sorted({m["label"] for m in members if m["label"] is not None})
        if len(labels) > 1:
            conflicts.append({"sha256": sha, "image_ids": ids, "labels": labels})
        splits = sorted({m["split"] for m in members})
        if len(splits) > 1:
            leakage.append({"sha256": sha, "image_ids": ids, "splits": splits})
    return duplicates, conflicts, leakage


def quality_report(ws: Workspace, dataset: str, *, max_items: int = 500) -> QualityReport:
    """The dataset's quality report; each list is capped at ``max_items`` entries."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        n = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ?", (ds_id,)).fetchone()[0]
        copies = exact_copies(conn, ds_id)
        flag_rows = conn.execute(
            "SELECT id, flags FROM images WHERE dataset_id = ? AND flags & ? != 0 ORDER BY id",
            (ds_id, FLAG_DARK | FLAG_BRIGHT | FLAG_BLURRY)).fetchall()
        near_rows = conn.execute(
            "SELECT i.id, i.phash, i.sha256, c.name AS label FROM images i "
            "LEFT JOIN classes c ON c.id = i.class_id "
            "WHERE i.dataset_id = ? AND i.flags & ? != 0 ORDER BY i.id",
            (ds_id, FLAG_NEAR_DUPLICATE)).fetchall()
        stats = conn.execute(
            "SELECT COUNT(mean_r), AVG(mean_r), AVG(mean_g), AVG(mean_b), AVG(sq_r), AVG(sq_g), "
            "AVG(sq_b), SUM(mode = 'L') FROM images WHERE dataset_id = ?", (ds_id,)).fetchone()
        reports = conn.execute("SELECT report_json FROM import_reports WHERE dataset_id = ? "
                               "ORDER BY id", (ds_id,)).fetchall()
    report = QualityReport(dataset, int(n))
    for r in reports:
        for s in json.loads(r[0]).get("skipped", []):
            report.skipped.append(s)
    report.duplicates, report.label_conflicts, report.leakage = copies
    label_of = {r["id"]: r["label"] for r in near_rows}
    sha_of = {r["id"]: r["sha256"] for r in near_rows}
    for g in near_duplicate_groups([r["id"] for r in near_rows], [r["phash"] for r in near_rows],
                                   sha_of.__getitem__):
        report.near_duplicates.append({"image_ids": g, "labels": sorted({str(label_of[i])
                                                                         for i in g})})
    for r in flag_rows:
        if r["flags"] & FLAG_DARK:
            report.dark.append(r["id"])
        if r["flags"] & FLAG_BRIGHT:
            report.bright.append(r["id"])
        if r["flags"] & FLAG_BLURRY:
            report.blurry.append(r["id"])
    if stats[0]:
        means = [float(stats[1]), float(stats[2]), float(stats[3])]
        sq = [float(stats[4]), float(stats[5]), float(stats[6])]
        stds = [float(np.sqrt(max(q - m * m, 0.0))) for m, q in zip(means, sq)]
        if stats[7] == stats[0]:  # every image grayscale: one channel
            means, stds = means[:1], stds[:1]
        report.channel_mean = [round(v, 4) for v in means]
        report.channel_std = [round(v, 4) for v in stds]
    report.counts = {k: len(getattr(report, k.replace("-", "_"))) for k in
                     ("skipped", "duplicates", "label_conflicts", "leakage", "near_duplicates",
                      "dark", "bright", "blurry")}
    for key in ("skipped", "duplicates", "label_conflicts", "leakage", "near_duplicates",
                "dark", "bright", "blurry"):
        setattr(report, key, getattr(report, key)[:max_items])
    return report


def distributions(ws: Workspace, dataset: str, *, limit: int = 20000) -> dict[str, list]:
    """Per-image width, height, aspect ratio and brightness (a seeded sample of ``limit``)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        n = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id = ?", (ds_id,)).fetchone()[0]
        step = max(1, -(-n // limit))
        rows = conn.execute(
            "SELECT width, height, brightness, sharpness FROM images WHERE dataset_id = ? "
            "AND id % ? = 0 ORDER BY id LIMIT ?", (ds_id, step, limit)).fetchall()
    return {"width": [r[0] for r in rows], "height": [r[1] for r in rows],
            "aspect": [round(r[0] / r[1], 4) if r[1] else 0.0 for r in rows],
            "brightness": [r[2] for r in rows if r[2] is not None],
            "sharpness": [r[3] for r in rows if r[3] is not None]}


def import_history(ws: Workspace, dataset: str, limit: int = 10) -> list[dict]:
    """The dataset's latest import reports, newest first (they outlive the browser tab)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        rows = conn.execute("SELECT id, source, added, report_json, created_at FROM import_reports "
                            "WHERE dataset_id = ? ORDER BY id DESC LIMIT ?", (ds_id, limit)).fetchall()
    out = []
    for r in rows:
        body = json.loads(r["report_json"])
        out.append({"id": r["id"], "source": r["source"], "added": r["added"],
                    "created_at": r["created_at"], "skipped": body.get("skipped", []),
                    "notes": body.get("notes", [])})
    return out
