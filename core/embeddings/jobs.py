"""The embedding job: a background process, like training, that outlives a browser reload.

``start_embedding_job`` starts ``python -m core embed DATASET --from KEY --job`` in a new
session (its output goes to ``embeddings/<dataset id>/job.log``) and refuses a second job
for a dataset while one runs. The process (``run_embedding_job``) writes its progress to
``embeddings/<dataset id>/job.json`` (atomically, at most twice a second):
``{state: starting|running|done|failed, stage, done, total, message, embedder, pid,
started_at, updated_at}``. Its stages: ``embeddings`` (only images with new content),
``pca`` (the instant map), ``index`` (the HNSW index, only for sets searched through it),
``umap`` (the map that replaces PCA). ``embedding_job_status`` reads the file and reports a
job whose process died as failed, with the tail of its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.data.catalog import get_dataset_id
from core.embeddings.compute import compute_embeddings, dataset_rows
from core.embeddings.embedders import default_embedder, embedder_stamp
from core.embeddings.index import hnsw_index, uses_index
from core.embeddings.projection import compute_umap, pca_coords
from core.embeddings.store import dataset_dir
from core.errors import ImageLabError
from core.processes import process_alive
from core.store.workspace import Workspace, atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[2]
LIVE = ("starting", "running")
START_GRACE_S = 60          # a job may take this long to write its first status


def _files(ws: Workspace, dataset: str) -> tuple[Path, Path, Path]:
    folder = dataset_dir(ws, get_dataset_id(ws, dataset))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "job.json", folder / "job.log", folder / "job.lock"


def embedding_job_status(ws: Workspace, dataset: str) -> dict | None:
    """The dataset's last embedding job (see the module docstring), None if it never had
    one; a live state whose process is gone reads as ``failed``."""
    status_file, log_file, _ = _files(ws, dataset)
    try:
        status = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return None
    if status.get("state") in LIVE and not _alive(status):
        tail = _tail(log_file)
        status.update(state="failed", message="the embedding process ended unexpectedly"
                      + (f"; last lines of its log:\n{tail}" if tail else ""))
    return status


def start_embedding_job(ws: Workspace, dataset: str, embedder: str | None = None) -> dict:
    """Start computing ``dataset``'s embeddings (``embedder`` None: the default), then its
    map, in a background process; returns the job's first status. Raises ``ImageLabError``
    while another job of this dataset runs."""
    key = embedder or default_embedder(ws, dataset)
    embedder_stamp(ws, dataset, key)              # a bad key or a missing run fails here
    status_file, log_file, lock_file = _files(ws, dataset)
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = embedding_job_status(ws, dataset)
        if current and current.get("state") in LIVE:
            raise ImageLabError(
                f"the embeddings of {dataset!r} are already being computed "
                f"({current.get('embedder')}, {current.get('stage')}: "
                f"{current.get('done', 0)}/{current.get('total', 0)}); wait for that job")
        status = {"state": "starting", "stage": "starting", "done": 0,
                  "total": len(dataset_rows(ws, dataset)[0]), "message": "starting",
                  "embedder": key, "pid": None, "started_at": time.time(),
                  "updated_at": time.time()}
        atomic_write_text(status_file, json.dumps(status))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH")]))
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "core", "embed", dataset, "--from", key, "--home",
                 str(ws.root), "--job"], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=proc.wait, daemon=True, name="reap-embed").start()
        with contextlib.suppress(OSError, ValueError):
            now = json.loads(status_file.read_text())
            if now.get("pid") is None:            # the job has not written its own yet
                now["pid"] = proc.pid
                atomic_write_text(status_file, json.dumps(now))
                status = now
    return status


class JobStatus:
    """The running job's side of ``job.json``: ``update`` merges fields and writes the file
    (progress at most every ``every`` seconds, other changes at once)."""

    def __init__(self, ws: Workspace, dataset: str, embedder: str, every: float = 0.5):
        self.path = _files(ws, dataset)[0]
        self.every, self._last = every, 0.0
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            old = {}
        self.data = {"state": "running", "stage": "embeddings", "done": 0, "total": 0,
                     "message": "", "embedder": embedder, "pid": os.getpid(),
                     "started_at": old.get("started_at") or time.time()}

    def update(self, progress_only: bool = False, **fields) -> None:
        """Merge ``fields`` and write (a progress-only update may be skipped if recent)."""
        self.data.update(fields)
        now = time.monotonic()
        if progress_only and now - self._last < self.every \
                and self.data["done"] < self.data["total"]:
            return
        self._last = now
        self.data["updated_at"] = time.time()
        atomic_write_text(self.path, json.dumps(self.data))


def run_embedding_job(ws: Workspace, dataset: str, embedder: str | None = None,
                      log=print) -> dict:
    """The job itself (run by ``python -m core embed ... --job``): embeddings, PCA, the
    index when the set needs one, UMAP; the status file follows each stage. Returns the
    final status; an error is recorded as ``failed`` and raised again."""
    key = embedder or default_embedder(ws, dataset)
    job = JobStatus(ws, dataset, key)
    job.update(message="embedding images with new content")
    try:
        es = compute_embeddings(ws, dataset, key, progress=lambda d, t: job.update(
            True, done=d, total=t, message=f"embedded {d:,} of {t:,} images"))
        job.update(stage="pca", message="the instant PCA map")
        pca_coords(es)
        if uses_index(len(es), es.dim):
            job.update(stage="index", message=f"building the search index of {len(es):,} "
                                              "vectors")
            hnsw_index(es)
        job.update(stage="umap", message="UMAP map (the PCA map shows meanwhile)")
        compute_umap(ws, dataset, key, progress=lambda m: (job.update(message=m), log(m)))
        job.update(state="done", stage="done", message=f"{len(es):,} images embedded by "
                                                       f"{es.model}; map ready")
    except BaseException as exc:
        text = str(exc) if isinstance(exc, ImageLabError) else f"{type(exc).__name__}: {exc}"
        job.update(state="failed", message=text)
        raise
    return job.data


def _alive(status: dict) -> bool:
    pid = status.get("pid")
    if not pid:
        return time.time() - float(status.get("started_at") or 0) < START_GRACE_S
    return process_alive(pid, "embed")


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
