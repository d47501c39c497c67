"""Issue 4: a bulk relabel of 10,000 images and its undo, on a 100,000-image dataset.

The dataset's 100,000 image rows (10 classes, an import action with one label
event per image, like a real import) are inserted directly with SQL: relabel
and undo read and write only rows, never pixels, so no image files are made.
The timings go through the real code paths (``core.labels.relabel.set_label``
and ``core.labels.history.undo_last_action``) on a real on-disk workspace with
the project's pragmas (WAL, synchronous=FULL).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time

from bench.harness import Result
from core.labels import history, relabel
from core.labels.selection import ImageFilter, matching_labels
from core.store.workspace import open_workspace

N_IMAGES = 100_000
N_EDIT = 10_000
CLASSES = [str(d) for d in range(10)]


def build(ws) -> None:
    now = time.time()
    with ws.write() as conn:
        ds = conn.execute("INSERT INTO datasets(name, source, created_at) VALUES ('big', 'bench', ?)",
                          (now,)).lastrowid
        ids = [conn.execute("INSERT INTO classes(dataset_id, name, position) VALUES (?, ?, ?)",
                            (ds, c, k)).lastrowid for k, c in enumerate(CLASSES)]
        rng = random.Random(0)
        conn.executemany(
            "INSERT INTO images(dataset_id, path, original_name, sha256, width, height, mode, format, "
            "num_bytes, split, class_id, added_at) VALUES (?, ?, ?, ?, 32, 32, 'RGB', 'PNG', 1000, ?, ?, ?)",
            ((ds, f"images/big/{i:06d}.png", f"{i:06d}.png", f"{i:064x}",
              rng.choice(("train", "train", "train", "val", "test")), ids[i % 10], now)
             for i in range(N_IMAGES)))
        action = conn.execute("INSERT INTO actions(dataset_id, kind, description, created_at) "
                              "VALUES (?, 'import', 'bench rows', ?)", (ds, now)).lastrowid
        conn.execute("INSERT INTO label_events(action_id, image_id, old_class_id, new_class_id, "
                     "created_at) SELECT ?, id, NULL, class_id, ? FROM images WHERE dataset_id = ?",
                     (action, now, ds))


def run() -> list[Result]:
    root = tempfile.mkdtemp(prefix="bench-labels-")
    try:
        ws = open_workspace(root)
        t0 = time.perf_counter()
        build(ws)
        build_s = time.perf_counter() - t0
        labels = matching_labels(ws, "big", ImageFilter())
        chosen = dict(random.Random(1).sample(sorted(labels.items()), N_EDIT))
        t0 = time.perf_counter()
        res = relabel.set_label(ws, "big", chosen, "7", user="bench")
        relabel_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        undo = history.undo_last_action(ws, "big", user="bench")
        undo_s = time.perf_counter() - t0
        assert undo.changed == res.changed, (res, undo)
        assert matching_labels(ws, "big", ImageFilter()) == labels
        detail = {"images": N_IMAGES, "edited": N_EDIT, "changed": res.changed,
                  "build_rows_s": round(build_s, 2)}
        return [
            Result(4, "bulk relabel of 10k images (100k dataset)", relabel_s, "s", "< 2",
                   detail={**detail, "seconds": relabel_s}),
            Result(4, "undo of that bulk relabel", undo_s, "s", "< 2", detail={**detail, "seconds": undo_s}),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
