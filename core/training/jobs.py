"""Background runs: each run is its own OS process; a queue runs one job at a time per device.

- ``start_run`` creates a run and queues a job (``queue_run``, which fine-tuning runs use
  too); ``dispatch`` starts the oldest queued job on
  every idle device as ``python -m core train --run-dir runs/<id>`` in a new session, with
  its output in ``runs/<id>/log.txt``. A trainer that ends dispatches the next job itself,
  and every look at the runs (page, CLI) calls ``refresh``, so no daemon is needed.
- ``stop_run`` writes the run's ``STOP`` file (checked at every step); a queued job is
  simply cancelled. ``resume_run`` queues the run again from its ``last.pt``.
- ``refresh`` finds runs marked running whose process is gone and marks them failed,
  with the tail of their log.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.device import pick_device
from core.errors import ImageLabError
from core.processes import process_alive as _process_alive
from core.store.run_paths import run_paths
from core.store.workspace import Workspace
from core.training.config import TrainConfig
from core.training.runs import FINAL, Run, create_run, get_run, read_log, set_status

REPO_ROOT = Path(__file__).resolve().parents[2]


def device_key(cfg_device: str) -> str:
    """The queue a run waits in: one job at a time per device."""
    return pick_device(cfg_device)


def start_run(ws: Workspace, cfg: TrainConfig, *, name: str = "") -> Run:
    """Create a run and queue it; it starts at once when its device is idle."""
    return queue_run(ws, create_run(ws, cfg, status="queued", name=name).id)


def resume_run(ws: Workspace, run_id: str) -> Run:
    """Queue a stopped or failed run again: from its ``last.pt``, or from the start."""
    run = get_run(ws, run_id)
    if run.status not in ("stopped", "failed"):
        raise ImageLabError(f"run {run_id} is {run.status}; only a stopped or failed run "
                            "can be resumed")
    has_checkpoint = run.paths.last.exists()
    # No checkpoint yet (stopped or killed before the first save): start it over.
    set_status(ws, run_id, "queued", "waiting to resume" if has_checkpoint else
               "no checkpoint yet: restarting from the beginning")
    return queue_run(ws, run_id, resume=has_checkpoint)


def stop_run(ws: Workspace, run_id: str) -> Run:
    """Ask a running run to stop at its next step; cancel a queued one."""
    run = get_run(ws, run_id)
    if run.status == "queued":
        with ws.write() as conn:
            conn.execute("UPDATE jobs SET status='cancelled', finished_at=? "
                         "WHERE run_id=? AND status='queued'", (time.time(), run_id))
        set_status(ws, run_id, "stopped", "stopped before it started"
                   if not run.paths.last.exists() else "stopped while queued")
    elif run.status == "running":
        run.paths.stop.write_text(str(time.time()))
    else:
        raise ImageLabError(f"run {run_id} is already {run.status}")
    return get_run(ws, run_id)


def queue_run(ws: Workspace, run_id: str, *, resume: bool = False) -> Run:
    """Queue a training job for the existing run ``run_id`` (``resume``: from its ``last.pt``)
    and start it if its device is idle; returns the run as it is now."""
    _enqueue(ws, run_id, resume)
    dispatch(ws)
    return get_run(ws, run_id)


def _enqueue(ws: Workspace, run_id: str, resume: bool) -> None:
    cfg = json.loads(run_paths(ws, run_id).config.read_text())
    args = ["--resume"] if resume else []
    with ws.write() as conn:
        conn.execute("INSERT INTO jobs (run_id, kind, device, status, args_json, created_at) "
                     "VALUES (?, 'train', ?, 'queued', ?, ?)",
                     (run_id, device_key(cfg.get("device", "auto")), json.dumps(args),
                      time.time()))


def dispatch(ws: Workspace) -> list[str]:
    """Start the oldest queued job on each idle device; returns the started run ids."""
    refresh(ws, dispatch_next=False)
    started = []
    while True:
        with ws.write() as conn:
            job = conn.execute(
                "SELECT j.* FROM jobs j WHERE j.status='queued' AND NOT EXISTS "
                "(SELECT 1 FROM jobs r WHERE r.status='running' AND r.device=j.device) "
                "ORDER BY j.created_at, j.id LIMIT 1").fetchone()
            if job is None:
                return started
            conn.execute("UPDATE jobs SET status='running', started_at=? WHERE id=?",
                         (time.time(), job["id"]))
        try:
            pid = _launch(ws, job["run_id"], json.loads(job["args_json"]), job["id"])
        except OSError as exc:
            _finish_job(ws, job["id"], "failed")
            set_status(ws, job["run_id"], "failed", f"could not start the training process: {exc}")
            continue
        with ws.write() as conn:
            conn.execute("UPDATE jobs SET pid=? WHERE id=?", (pid, job["id"]))
            conn.execute("UPDATE runs SET pid=? WHERE id=?", (pid, job["run_id"]))
        started.append(job["run_id"])


def _launch(ws: Workspace, run_id: str, extra: list[str], job_id: int) -> int:
    paths = run_paths(ws, run_id)
    log = open(paths.log, "ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "core", "train", "--home", str(ws.root), "--run-dir",
           str(paths.folder), "--job-id", str(job_id), *extra]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    # reap it when it ends, so a finished child never lingers as a zombie of this process
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{run_id}").start()
    return proc.pid


def finish_job(ws: Workspace, job_id: int | None, status: str) -> None:
    """Called by the trainer process on exit: close its job and start the next one."""
    if job_id is not None:
        _finish_job(ws, job_id, status)
    with contextlib.suppress(Exception):
        dispatch(ws)


def _finish_job(ws: Workspace, job_id: int, status: str) -> None:
    with ws.write() as conn:
        conn.execute("UPDATE jobs SET status=?, finished_at=? WHERE id=?",
                     (status, time.time(), job_id))


def process_alive(pid: int | None) -> bool:
    """True while ``pid`` is a live (not zombie) training process."""
    return _process_alive(pid, "train")


def refresh(ws: Workspace, dispatch_next: bool = True) -> list[str]:
    """Mark runs whose process died as failed (with their log's tail); returns their ids."""
    with ws.db() as conn:
        rows = conn.execute("SELECT id, pid, started_at FROM runs WHERE status='running'").fetchall()
        jobs = conn.execute("SELECT id, run_id, pid, started_at FROM jobs "
                            "WHERE status='running'").fetchall()
    dead = []
    now = time.time()
    for r in rows:
        if r["pid"] and not process_alive(r["pid"]):
            dead.append(r["id"])
    for j in jobs:
        # a job between 'running' and its pid being written gets a grace period
        if not j["pid"] and now - (j["started_at"] or now) < 30:
            continue
        if not process_alive(j["pid"]):
            run = get_run(ws, j["run_id"])
            _finish_job(ws, j["id"], "done" if run.status in FINAL else "failed")
            if run.status not in FINAL and j["run_id"] not in dead:
                dead.append(j["run_id"])
    for run_id in dead:
        run = get_run(ws, run_id)
        if run.status in FINAL:
            continue
        tail = read_log(run.folder, 15)
        set_status(ws, run_id, "failed",
                   "the training process died unexpectedly"
                   + (f"; last lines of its log:\n{tail}" if tail else " (its log is empty)"))
    if dead and dispatch_next:
        dispatch(ws)
    return dead
