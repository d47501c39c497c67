"""Handlers of ``python -m core embed|similar`` (parsers in ``core/cli/explore.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core.cli.output import emit, log, table
from core.data.files import read_file
from core.embeddings.compute import compute_embeddings
from core.embeddings.embedders import BACKBONE, PIXELS, RUN_PREFIX, default_embedder
from core.embeddings.index import hnsw_index, uses_index
from core.embeddings.jobs import embedding_job_status, run_embedding_job, start_embedding_job
from core.embeddings.projection import compute_umap, pca_coords
from core.embeddings.search import similar_to_file, similar_to_image
from core.embeddings.store import load_embeddings
from core.errors import ImageLabError
from core.store.workspace import Workspace


def embedder_key(ws: Workspace, dataset: str, text: str | None) -> str:
    """``--from``'s value as an embedder key: None → the default; a bare run id → ``run:ID``;
    ``efficientnet_lite0`` or ``imagenet`` → the backbone."""
    if not text:
        return default_embedder(ws, dataset)
    text = text.strip()
    if text in (PIXELS, BACKBONE) or ":" in text:
        return text
    if text in ("efficientnet_lite0", "imagenet", "backbone"):
        return BACKBONE
    return RUN_PREFIX + text


class ProgressBar:
    """``progress(done, total)`` drawn on stderr: a bar redrawn in place on a terminal, a line
    every few seconds otherwise."""

    def __init__(self, what: str):
        self.what, self.tty, self._last = what, sys.stderr.isatty(), 0.0

    def __call__(self, done: int, total: int) -> None:
        """Draw ``done`` of ``total``."""
        now = time.monotonic()
        end = done >= total
        if now - self._last < (0.1 if self.tty else 2.0) and not end:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac)
        text = f"{self.what} [{bar:<30}] {done:,}/{total:,} ({100 * frac:.0f}%)"
        if self.tty:
            sys.stderr.write("\r" + text + ("\n" if end else ""))
            sys.stderr.flush()
        else:
            log(text)


def cmd_embed(args, ws: Workspace) -> int:
    """``embed DATASET [--from E] [--umap|--background|--status]``."""
    if args.status:
        emit(args, embedding_job_status(ws, args.dataset) or {"state": None})
        return 0
    key = embedder_key(ws, args.dataset, args.embedder)
    if args.job:
        run_embedding_job(ws, args.dataset, key, log=log)
        return 0
    if args.background:
        status = start_embedding_job(ws, args.dataset, key)
        log(f"embedding {args.dataset} with {key} in the background; follow it with "
            f"`python -m core embed {args.dataset} --status`")
        emit(args, status)
        return 0
    started = time.perf_counter()
    before = load_embeddings(ws, args.dataset, key)
    es = compute_embeddings(ws, args.dataset, key, progress=ProgressBar(f"embedding {key}"))
    reused = 0 if before is None or before.stamp != es.stamp else \
        len(set(before.shas.tolist()) & set(es.shas.tolist()))
    pca_coords(es)
    if uses_index(len(es), es.dim):
        log(f"building the search index of {len(es):,} vectors")
        hnsw_index(es)
    method = "pca"
    if args.umap:
        compute_umap(ws, args.dataset, key, progress=log)
        method = "umap"
    elif es.derived("umap.npy").is_file():
        method = "umap"
    emit(args, {"dataset": args.dataset, "embedder": es.embedder, "model": es.model,
                "count": len(es), "dim": es.dim, "embedded": len(es) - min(reused, len(es)),
                "computed_at": es.computed_at, "map": method,
                "seconds": round(time.perf_counter() - started, 2)},
         lambda d: (f"{d['count']:,} images of {d['dataset']} embedded by {d['model']} "
                    f"({d['dim']} values each; {d['embedded']:,} computed now, the rest "
                    f"reused) in {d['seconds']} s; map: {d['map']}"))
    return 0


def cmd_similar(args, ws: Workspace) -> int:
    """``similar DATASET IMAGE_ID_OR_FILE [--k K] [--from E]``."""
    key = embedder_key(ws, args.dataset, args.embedder)
    compute_embeddings(ws, args.dataset, key, progress=ProgressBar(f"embedding {key}"))
    path = Path(args.image)
    if args.image.isdigit() and not path.exists():
        hits = similar_to_image(ws, args.dataset, int(args.image), k=args.k, embedder=key)
        log(f"images of {args.dataset} most like image {args.image} ({key})")
    else:
        if not path.is_file():
            raise ImageLabError(f"{args.image} is neither an image id of {args.dataset} nor a "
                                "file")
        hits = similar_to_file(ws, args.dataset, read_file(path), k=args.k, embedder=key)
        log(f"images of {args.dataset} most like {path.name} ({key})")
    rows = [h.to_dict() for h in hits]
    emit(args, rows, lambda r: table([{**x, "distance": f"{x['distance']:.4f}"} for x in r],
                                     ["image_id", "label", "split", "distance"]))
    return 0
