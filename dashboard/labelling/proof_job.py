"""The simulated-oracle experiment as a background process the Label page can start and find
again: ``python -m core al-bench DATASET --json`` in its own session, its answer in the
workspace.

Nothing lives in the browser session, so a reload (or another tab) finds the same job:
``<workspace>/active/al-bench-<dataset id>/`` holds ``job.json`` (pid, command, start
time), ``result.json.part`` (the process's standard output while it runs), ``log.txt`` (its
standard error) and, once it ended with a whole JSON answer, ``result.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.data.catalog import get_dataset_id
from core.processes import process_alive
from core.store.workspace import Workspace, atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ProofState:
    """Where the experiment of one dataset stands: ``status`` is ``none`` (never run),
    ``running``, ``done`` (``result`` holds the answer), ``stopped`` (by ``stop_proof``) or
    ``failed`` (``error``: the log's tail); ``started`` and ``finished`` are Unix times."""
    status: str
    result: dict | None = None
    error: str = ""
    started: float | None = None
    finished: float | None = None


def job_folder(ws: Workspace, dataset: str) -> Path:
    """The experiment's folder for ``dataset`` (keyed by id: names may hold any character)."""
    return ws.root / "active" / f"al-bench-{get_dataset_id(ws, dataset)}"


def start_proof(ws: Workspace, dataset: str, options: list[str] | None = None) -> int:
    """Start the experiment in the background (unless it is running); returns its pid."""
    folder = job_folder(ws, dataset)
    state = proof_state(ws, dataset)
    if state.status == "running":
        return _read_job(folder)["pid"]
    folder.mkdir(parents=True, exist_ok=True)
    for old in ("result.json", "job.json"):
        (folder / old).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "core", "al-bench", dataset, "--json", *(options or [])]
    env = dict(os.environ, IMAGELAB_HOME=str(ws.root), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(folder / "result.json.part", "wb") as out, open(folder / "log.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-al-bench-{proc.pid}").start()
    atomic_write_text(folder / "job.json", json.dumps({"pid": proc.pid, "cmd": cmd,
                                                       "started": time.time()}))
    return proc.pid


def proof_state(ws: Workspace, dataset: str) -> ProofState:
    """Where the experiment stands now; a process that ended is read (once) into
    ``result.json``, or reported failed with its log's tail."""
    folder = job_folder(ws, dataset)
    job = _read_job(folder)
    if job is None:
        return ProofState("none")
    started = job.get("started")
    final = folder / "result.json"
    if final.exists():
        return ProofState("done", json.loads(final.read_text()), started=started,
                          finished=final.stat().st_mtime)
    if _alive(job.get("pid")):
        return ProofState("running", started=started)
    part = folder / "result.json.part"
    try:
        result = json.loads(part.read_text())
    except (OSError, ValueError):
        if job.get("stopped"):
            return ProofState("stopped", started=started)
        tail = (folder / "log.txt").read_text(errors="replace")[-1500:] if (folder / "log.txt").exists() else ""
        return ProofState("failed", error=tail.strip() or "the experiment ended without an answer",
                          started=started)
    os.replace(part, final)
    return ProofState("done", result, started=started, finished=final.stat().st_mtime)


def stop_proof(ws: Workspace, dataset: str) -> None:
    """End a running experiment (SIGTERM to its process group)."""
    folder = job_folder(ws, dataset)
    job = _read_job(folder)
    if job and _alive(job.get("pid")):
        atomic_write_text(folder / "job.json", json.dumps({**job, "stopped": time.time()}))
        os.killpg(job["pid"], 15)


def _read_job(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "job.json").read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    """True while ``pid`` is a live (not zombie) al-bench process."""
    return process_alive(pid, "al-bench", reap=False)