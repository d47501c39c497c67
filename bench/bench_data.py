"""Data benchmarks (issue 3), each a ratio measured in one run:

1. Import throughput of a 10,000-image folder of small PNGs, against
   torchvision.datasets.ImageFolder merely decoding the same files once.
   The import does everything: full decode, hash, statistics, copy (a hardlink),
   thumbnail, database rows, quality flags and the uint8 tensor cache, with the
   decoding spread over one worker process per core (the bare decode uses one).
   Target: < 2×.
2. Gallery page time (a page of 32 rows plus reading their thumbnails, first page,
   a deep page and a class-filtered page) on a 100,000-image dataset against a
   1,000-image one. Target: ≤ 1.5×. The large dataset's rows are made in SQL by
   repeating the rows of 1,000 really imported images (same files and thumbnails):
   a page's cost depends on the rows, not on the pixels. Each repeated row gets its
   own file (a hardlink to the original), as a real dataset would.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.harness import Result, best_time

N_IMPORT = 10_000
N_SMALL, N_LARGE = 1_000, 100_000


def _write_pngs(root: Path, n: int, classes: int = 10, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        base = (np.sin(xx * (0.2 + 0.05 * c)) + np.cos(yy * 0.3)) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"class{c}" / f"{i:05d}.png")


def _bare_decode(root: Path) -> int:
    from torchvision.datasets import ImageFolder
    ds = ImageFolder(str(root))
    for i in range(len(ds)):
        ds[i]
    return len(ds)


def bench_import(tmp: Path) -> Result:
    from core.data.prepare import worker_count
    from core.data.sources import import_source
    from core.store.workspace import open_workspace
    src = tmp / "folder"
    _write_pngs(src, N_IMPORT)
    _bare_decode(src)  # warm the page cache for both contenders
    t_bare = best_time(lambda: _bare_decode(src), repeat=2)
    times = []
    for k in range(2):
        ws = open_workspace(tmp / f"ws-import-{k}")
        t0 = time.perf_counter()
        report = import_source(ws, str(src), "bench")
        times.append(time.perf_counter() - t0)
        assert report.added == N_IMPORT, report.skipped[:3]
    t_import = min(times)
    return Result(3, "import 10k PNG folder vs ImageFolder bare decode", t_import / t_bare, "×",
                  "< 2", detail={"import_s": round(t_import, 3), "bare_decode_s": round(t_bare, 3),
                                 "import_runs_s": [round(t, 3) for t in times],
                                 "note": "best of 2 imports into fresh workspaces; the first "
                                         "also starts the worker processes",
                                 "workers": worker_count(),
                                 "images": N_IMPORT,
                                 "import_img_per_s": round(N_IMPORT / t_import),
                                 "bare_img_per_s": round(N_IMPORT / t_bare)})


def _grow(ws, name: str, target: int) -> None:
    """Repeat the dataset's rows (same files, thumbnails, labels) up to ``target`` rows."""
    from core.data.catalog import get_dataset_id
    ds_id = get_dataset_id(ws, name)
    with ws.write() as conn:
        n = conn.execute("SELECT COUNT(*) FROM images WHERE dataset_id=?", (ds_id,)).fetchone()[0]
        copy = 0
        while n < target:
            copy += 1
            take = min(n, target - n)
            conn.execute(
                "INSERT INTO images(dataset_id, path, original_name, sha256, width, height, mode, "
                "format, num_bytes, split, class_id, added_at, phash, brightness, sharpness, "
                "mean_r, mean_g, mean_b, sq_r, sq_g, sq_b, flags) "
                "SELECT dataset_id, path || '#' || ?, original_name, sha256, width, height, mode, "
                "format, num_bytes, split, class_id, added_at, phash, brightness, sharpness, "
                "mean_r, mean_g, mean_b, sq_r, sq_g, sq_b, flags FROM images "
                "WHERE dataset_id = ? ORDER BY id LIMIT ?", (f"{copy}", ds_id, take))
            n += take
        # every row has its own file, as in a real dataset (a hardlink to the original)
        for (path,) in conn.execute("SELECT path FROM images WHERE dataset_id = ? AND "
                                    "path LIKE '%#%'", (ds_id,)):
            os.link(ws.root / path.split("#")[0], ws.root / path)


def _page_work(ws, name: str, after_id: int, label: str | None) -> int:
    from core.data.gallery import image_page
    rows = image_page(ws, name, after_id=after_id, label=label, limit=33)[:32]
    total = 0
    for r in rows:
        total += len(r.thumb.read_bytes())  # what st.image sends to the browser
    return total


def _page_time(ws, name: str) -> float:
    from core.data.catalog import get_dataset_id
    ds_id = get_dataset_id(ws, name)
    with ws.db() as conn:
        lo, hi = conn.execute("SELECT MIN(id), MAX(id) FROM images WHERE dataset_id=?",
                              (ds_id,)).fetchone()
    deep = lo + int((hi - lo) * 0.9)

    def work():
        for _ in range(10):
            _page_work(ws, name, 0, None)
            _page_work(ws, name, deep, None)
            _page_work(ws, name, deep, "class3")
    return best_time(work, repeat=5) / 30


def bench_gallery(tmp: Path) -> Result:
    from core.data.sources import import_source
    from core.store.workspace import open_workspace
    src = tmp / "gallery-src"
    _write_pngs(src, N_SMALL)
    ws = open_workspace(tmp / "ws-gallery")
    import_source(ws, str(src), "small")
    import_source(ws, str(src), "large")
    _grow(ws, "large", N_LARGE)
    t_small = _page_time(ws, "small")
    t_large = _page_time(ws, "large")
    return Result(3, "gallery page time, 100k vs 1k images", t_large / t_small, "×", "<= 1.5",
                  detail={"page_ms_1k": round(t_small * 1000, 3),
                          "page_ms_100k": round(t_large * 1000, 3)})


def run() -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="imagelab-bench-data-"))
    try:
        return [bench_import(tmp), bench_gallery(tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
