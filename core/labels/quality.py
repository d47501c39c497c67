"""Label quality: suspected label errors from held-out predictions, and duplicates
that carry different labels.

``rank_label_issues`` is confident learning (Northcutt et al., 2021) as a pure
function: per-class thresholds are the mean probability the model gives a class
over the images labelled with it; an image is *confidently* of class j when
p(j) >= t_j (the highest such p wins); images confidently of a class other
than their given one (the off-diagonal of the confident joint) are suspects,
ranked by self-confidence p(given) or by margin p(given) - max p(other).

The probabilities must be *held-out*: for images the model did not train on
(the validation split). A run provides them in ``runs/<run_id>/predictions_val.npz``
(see ``load_predictions``).

Review decisions (accept the suggestion, keep the label, exclude the image)
are each one transaction and are remembered in ``label_reviews``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.data.phash import near_groups
from core.errors import ImageLabError
from core.labels.common import (
    ActionResult,
    class_id_for,
    class_names_by_id,
    current_user,
    dataset_id,
    live_classes,
)
from core.labels.edits import begin_edit, commit_staged, stage_image_field, stage_labels
from core.store.run_paths import run_paths
from core.store.workspace import Workspace

SOURCES = {"val": "the validation split (the model never trained on it)"}


@dataclass
class Suspect:
    """An image the model confidently puts in another class: given and suggested class names,
    p(given), the margin and p(suggested), all in 0-1 (the margin in -1..1)."""
    image_id: int
    given: str
    suggested: str
    self_confidence: float     # p(given label)
    margin: float              # p(given) - max p(other); negative: another class is likelier
    suggested_confidence: float

    def to_dict(self) -> dict:
        """The suspect as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass
class Ranking:
    """Suspects (most suspicious first), per-class thresholds (mean p(class) over its images),
    images scored; for a run, where the predictions came from and images skipped by reason."""
    suspects: list[Suspect]
    thresholds: dict[str, float]
    num_scored: int
    source: str = ""                 # "val" (see SOURCES)
    run_id: str = ""
    skipped: dict[str, int] = field(default_factory=dict)


def rank_label_issues(image_ids, given, probs, class_names, *, order: str = "self_confidence") -> Ranking:
    """Confident-learning suspects, most suspicious first.

    ``given``: the given label per image, as an index into ``class_names``;
    ``probs``: N×K held-out predicted probabilities (rows sum to 1).
    """
    ids = np.asarray(image_ids, dtype=np.int64)
    y = np.asarray(given, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    if p.ndim != 2 or p.shape != (len(ids), k) or y.shape != ids.shape:
        raise ImageLabError(f"predictions do not line up: {len(ids)} images, labels {y.shape}, "
                            f"probabilities {p.shape}, {k} classes")
    if len(ids) and (y.min() < 0 or y.max() >= k):
        raise ImageLabError("a given label is outside the class list")
    if order not in ("self_confidence", "margin"):
        raise ValueError(order)
    thresholds = np.full(k, np.inf)
    for j in range(k):
        mask = y == j
        if mask.any():
            thresholds[j] = p[mask, j].mean()
    above = p >= thresholds[None, :]
    masked = np.where(above, p, -1.0)
    confident = masked.argmax(axis=1)
    has = above.any(axis=1)
    off = has & (confident != y)
    rows = np.arange(len(ids))
    self_conf = p[rows, y] if len(ids) else np.zeros(0)
    other = p.copy()
    if len(ids):
        other[rows, y] = -np.inf
    margin = self_conf - (other.max(axis=1) if len(ids) else np.zeros(0))
    idx = np.flatnonzero(off)
    key = self_conf[idx] if order == "self_confidence" else margin[idx]
    idx = idx[np.lexsort((ids[idx], key))]
    suspects = [Suspect(int(ids[i]), str(class_names[y[i]]), str(class_names[confident[i]]),
                        float(self_conf[i]), float(margin[i]), float(p[i, confident[i]])) for i in idx]
    return Ranking(suspects, {str(c): float(t) for c, t in zip(class_names, thresholds)}, len(ids))


# -- predictions written by runs --------------------------------------------------

@dataclass
class Predictions:
    """A run's held-out predictions: N×K ``probs`` for ``image_ids`` over ``class_names``, their
    ``source`` (a key of ``SOURCES``), the label version they were made at (or ``None``)."""
    run_id: str
    path: Path
    image_ids: np.ndarray
    probs: np.ndarray
    class_names: list[str]
    source: str
    label_version: int | None


def load_predictions(path: Path, run_id: str = "") -> Predictions:
    """Read a run's held-out predictions (``.npz``: image_ids, probs, class_names, source)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, probs = z["image_ids"].astype(np.int64), z["probs"].astype(np.float64)
            names = [str(c) for c in z["class_names"].tolist()]
            source = str(z["source"]) if "source" in z else ""
            version = int(z["label_version"]) if "label_version" in z else None
    except (OSError, KeyError, ValueError) as exc:
        raise ImageLabError(f"cannot read predictions {path}: {exc}") from None
    if source not in SOURCES:
        raise ImageLabError(f"{path}: 'source' must be one of {', '.join(SOURCES)} (held-out "
                            f"predictions only), not {source!r}")
    return Predictions(run_id, Path(path), ids, probs, names, source, version)


def prediction_runs(ws: Workspace, dataset: str) -> list[tuple[str, Path]]:
    """Finished runs of this dataset that left held-out predictions, newest first."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        runs = [r[0] for r in conn.execute(
            "SELECT id FROM runs WHERE dataset_id = ? AND status = 'finished' "
            "ORDER BY COALESCE(finished_at, created_at) DESC", (ds_id,))]
    paths = [(run_id, run_paths(ws, run_id).predictions_val) for run_id in runs]
    return [(run_id, path) for run_id, path in paths if path.is_file()]


def rank_run(ws: Workspace, dataset: str, run_id: str, path: Path, *,
             order: str = "self_confidence", include_reviewed: bool = False) -> Ranking:
    """Rank a run's held-out predictions against the labels the images have *now*.

    Unlabelled and excluded images, and images already reviewed for this run,
    are left out (counted in ``skipped``).
    """
    pred = load_predictions(path, run_id)
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        cur = {int(r[0]): (r[1], int(r[2])) for r in conn.execute(
            "SELECT id, class_id, excluded FROM images WHERE dataset_id = ?", (ds_id,))}
        reviewed = set() if include_reviewed else {int(r[0]) for r in conn.execute(
            "SELECT image_id FROM label_reviews WHERE dataset_id = ? AND run_id = ?", (ds_id, run_id))}
    col = {n: j for j, n in enumerate(pred.class_names)}
    keep, given = [], []
    skipped = {"not in dataset": 0, "unlabelled": 0, "excluded": 0, "class not in model": 0,
               "reviewed": 0}
    for row, image_id in enumerate(pred.image_ids.tolist()):
        if image_id not in cur:
            skipped["not in dataset"] += 1
            continue
        class_id, excluded = cur[image_id]
        if class_id is None:
            skipped["unlabelled"] += 1
        elif excluded:
            skipped["excluded"] += 1
        elif names.get(class_id) not in col:
            skipped["class not in model"] += 1
        elif image_id in reviewed:
            skipped["reviewed"] += 1
        else:
            keep.append(row)
            given.append(col[names[class_id]])
    ranking = rank_label_issues(pred.image_ids[keep], given, pred.probs[keep], pred.class_names,
                                order=order)
    ranking.source, ranking.run_id, ranking.skipped = pred.source, run_id, skipped
    return ranking


# -- review decisions ---------------------------------------------------------------

def _review_row(conn, ds_id, image_id, run_id, decision, action_id, user) -> None:
    conn.execute("INSERT INTO label_reviews(dataset_id, image_id, run_id, decision, action_id, user, "
                 "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (ds_id, image_id, run_id, decision, action_id, user, time.time()))


def accept_suggestion(ws: Workspace, dataset: str, image_id: int, suggested: str, *,
                      expected: str | None, run_id: str = "", user: str | None = None) -> ActionResult:
    """Relabel to the model's suggestion (one action), remembering the review."""
    user = current_user(user)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        classes = live_classes(conn, ds_id)
        exp = classes.get(expected, -1) if expected is not None else None
        begin_edit(conn)
        stage_labels(conn, [(int(image_id), exp, class_id_for(conn, ds_id, suggested, classes=classes))])
        res = commit_staged(conn, ds_id, kind="review_relabel",
                            description=f"review: accept {suggested!r} for image {image_id}", user=user)
        _review_row(conn, ds_id, int(image_id), run_id, "accepted", res.action_id, user)
        return res


def keep_label(ws: Workspace, dataset: str, image_id: int, *, run_id: str = "",
               user: str | None = None) -> None:
    """The current label is right: remember it, so this run stops suggesting otherwise."""
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        if not conn.execute("SELECT 1 FROM images WHERE id = ? AND dataset_id = ?",
                            (int(image_id), ds_id)).fetchone():
            raise ImageLabError(f"image {image_id} is not in {dataset!r}")
        _review_row(conn, ds_id, int(image_id), run_id, "kept", None, current_user(user))


def exclude_from_training(ws: Workspace, dataset: str, image_id: int, *, run_id: str = "",
                          user: str | None = None) -> ActionResult:
    """Review decision: leave the image out of training (one undoable action); remembered in
    ``label_reviews`` so it is not suggested again."""
    user = current_user(user)
    with ws.write() as conn:
        ds_id = dataset_id(conn, dataset)
        begin_edit(conn)
        stage_image_field(conn, "excluded", [(int(image_id), "1")])
        res = commit_staged(conn, ds_id, kind="exclude",
                            description=f"review: exclude image {image_id} from training", user=user)
        _review_row(conn, ds_id, int(image_id), run_id, "excluded", res.action_id, user)
        return res


# -- duplicates with different labels -----------------------------------------------

@dataclass
class DuplicateGroup:
    """Identical or nearly identical labelled images with different labels (``labels``, class
    names, parallel to ``image_ids``)."""
    image_ids: list[int]
    labels: list[str | None]
    exact: bool               # same file bytes (sha256), else near (perceptual hash)

    def to_dict(self) -> dict:
        """The group as a plain dict (JSON-ready)."""
        return asdict(self)


def has_phash(conn) -> bool:
    """True if the workspace's ``images`` table has the ``phash`` column (perceptual hashes)."""
    return any(r[1] == "phash" for r in conn.execute("PRAGMA table_info(images)"))


def conflicting_duplicates(ws: Workspace, dataset: str, *, max_distance: int = 4) -> list[DuplicateGroup]:
    """Groups of identical (same sha256) or nearly identical (dHash within
    ``max_distance`` bits, when the workspace has perceptual hashes) labelled
    images that carry different labels."""
    with ws.db() as conn:
        ds_id = dataset_id(conn, dataset)
        names = class_names_by_id(conn, ds_id)
        rows = conn.execute("SELECT id, sha256, class_id FROM images WHERE dataset_id = ? "
                            "AND class_id IS NOT NULL ORDER BY id", (ds_id,)).fetchall()
        hashes = conn.execute("SELECT id, phash FROM images WHERE dataset_id = ? AND class_id IS NOT "
                              "NULL AND phash IS NOT NULL ORDER BY id", (ds_id,)).fetchall() \
            if has_phash(conn) else []
    label = {int(r[0]): r[2] for r in rows}
    by_sha: dict[str, list[int]] = {}
    for r in rows:
        by_sha.setdefault(r[1], []).append(int(r[0]))
    groups: list[DuplicateGroup] = []
    exact_sets = []
    for ids in by_sha.values():
        if len(ids) > 1 and len({label[i] for i in ids}) > 1:
            groups.append(DuplicateGroup(ids, [names.get(label[i]) for i in ids], True))
            exact_sets.append(set(ids))
    if hashes:
        ids = np.array([r[0] for r in hashes], dtype=np.int64)
        hs = np.array([r[1] for r in hashes], dtype=np.int64)
        for g in near_groups(ids, hs, max_distance=max_distance):
            if len({label[i] for i in g}) > 1 and not any(set(g) <= s for s in exact_sets):
                groups.append(DuplicateGroup(g, [names.get(label[i]) for i in g], False))
    return sorted(groups, key=lambda g: (not g.exact, g.image_ids[0]))
