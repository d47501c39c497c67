"""``make soak``: the robustness run (not part of ``make test``).

1. Imports a 100,000-image ``sample:shapes`` dataset into a fresh workspace.
2. Starts a training job on it (a real background process) and a real
   ``streamlit run`` server on that workspace.
3. Two simulated sessions bulk-edit labels, each printing an acknowledgement
   after every committed action.
4. The trainer, the server and the sessions are SIGKILLed at random moments and
   restarted (the trainer by ``resume``).
5. Then it checks: every acknowledged edit is in the database, ``PRAGMA
   integrity_check`` passes, every killed run resumed, and the peak memory.

    python -m bench.soak [--images 100000] [--kills 4] [--seed 0] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EDITOR = r"""
import json, random, sys
from core.store.workspace import open_workspace
from core.labels.relabel import relabel
from core.labels.common import LabelConflict
ws = open_workspace(sys.argv[1])
name, seed = sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
with ws.db() as conn:
    ds = conn.execute("SELECT id FROM datasets WHERE name=?", (name,)).fetchone()[0]
    classes = [r[0] for r in conn.execute(
        "SELECT name FROM classes WHERE dataset_id=? AND deleted_at IS NULL", (ds,))]
    n = conn.execute("SELECT MAX(id), MIN(id) FROM images WHERE dataset_id=?", (ds,)).fetchone()
while True:
    start = rng.randint(n[1], n[0] - 1000)
    with ws.db() as conn:
        rows = conn.execute("SELECT i.id, c.name FROM images i LEFT JOIN classes c "
                            "ON c.id = i.class_id WHERE i.dataset_id=? AND i.id BETWEEN ? AND ?",
                            (ds, start, start + 999)).fetchall()
    new = rng.choice(classes)
    try:
        res = relabel(ws, name, [(r[0], r[1], new) for r in rows], user=f"soak-{seed}")
    except LabelConflict:
        print(json.dumps({"conflict": True}), flush=True)
        continue
    if res.action_id is not None:
        print(json.dumps({"action": res.action_id, "changed": res.changed,
                          "ids": [rows[0][0], rows[-1][0]], "label": new}), flush=True)
"""


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def proc_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Editor:
    def __init__(self, home: Path, dataset: str, seed: int):
        self.home, self.dataset, self.seed = home, dataset, seed
        self.acks: list[dict] = []
        self.conflicts = 0
        self.proc = None
        self.peak_mb = 0.0

    def start(self):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-c", EDITOR, str(self.home), self.dataset,
                                      str(self.seed)], stdout=subprocess.PIPE, text=True,
                                     cwd=REPO, env=env)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def drain(self):
        if self.proc is None:
            return
        self.peak_mb = max(self.peak_mb, proc_peak_mb(self.proc.pid))
        while True:
            line = self.proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line) if line.strip().startswith("{") else {}
            if msg.get("conflict"):
                self.conflicts += 1
            elif "action" in msg:
                self.acks.append(msg)

    def kill(self):
        self.drain()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.drain()
        self.seed += 1000


class Server:
    def __init__(self, home: Path, port: int):
        self.home, self.port, self.proc = home, port, None
        self.peak_mb = 0.0

    def start(self, timeout=90):
        env = dict(os.environ, IMAGELAB_HOME=str(self.home), PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
             str(self.port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health",
                                            timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return True
            except OSError:
                time.sleep(0.5)
        return False

    def kill(self):
        self.peak_mb = max(self.peak_mb, proc_peak_mb(self.proc.pid))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=4, help="kill rounds (trainer, server, sessions)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--home", help="workspace folder (default: a fresh temp folder, removed after)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="imagelab-soak-")) / "ws"
    os.environ["IMAGELAB_HOME"] = str(home)
    sys.path.insert(0, str(REPO))
    from core.data.samples import import_sample
    from core.store.workspace import open_workspace
    from core.training.config import TrainConfig
    from core.training.jobs import refresh, resume_run, start_run
    from core.training.runs import get_run

    # Checkpoint every 10 s (default 60), so random kills land between checkpoints.
    os.environ.setdefault("IMAGELAB_CHECKPOINT_EVERY_S", "10")
    ws = open_workspace(home)
    t0 = time.time()
    print(f"importing {args.images:,} shapes into {home} …", flush=True)
    import_sample(ws, "sample:shapes", "soak", count=args.images, size=32)
    import_seconds = time.time() - t0
    print(f"  imported in {import_seconds:.0f}s", flush=True)

    run = start_run(ws, TrainConfig(dataset="soak", arch="compact", image_size=32,
                                    epochs=args.epochs, batch_size=256))
    server = Server(home, 8600 + rng.randint(0, 300))
    server_restarts = int(server.start())
    editors = [Editor(home, "soak", seed) for seed in (1, 2)]
    for e in editors:
        e.start()
    trainer_kills = resumes = crashed_sessions = 0
    for round_ in range(args.kills):
        time.sleep(rng.uniform(8, 20))
        for e in editors:
            e.drain()
            if e.proc.poll() is not None:          # a session that failed on its own
                crashed_sessions += 1
                e.start()
        r = get_run(ws, run.id)
        if r.status == "running" and r.pid:
            try:
                os.kill(r.pid, signal.SIGKILL)
                trainer_kills += 1
            except ProcessLookupError:
                pass
            deadline = time.time() + 30
            while get_run(ws, run.id).status == "running" and time.time() < deadline:
                refresh(ws)
                time.sleep(0.5)
        server.kill()
        victim = editors[round_ % 2]
        victim.kill()
        print(f"round {round_ + 1}: killed trainer (run {get_run(ws, run.id).status}), "
              f"server and session {round_ % 2 + 1}", flush=True)
        if get_run(ws, run.id).status in ("failed", "stopped"):
            try:
                resume_run(ws, run.id)
                resumes += 1
            except Exception as exc:  # reported, counted as a failed resume
                print(f"  resume failed: {exc}", flush=True)
        server_restarts += int(server.start())
        victim.start()

    time.sleep(5)
    for e in editors:
        e.kill()
    server.kill()
    print("waiting for the run to finish …", flush=True)
    deadline = time.time() + 1800
    while time.time() < deadline:
        status = get_run(ws, run.id).status
        if status in ("finished", "failed", "stopped"):
            break
        refresh(ws)
        time.sleep(2)
    final = get_run(ws, run.id)

    acks = [a for e in editors for a in e.acks]
    found = 0
    with ws.db() as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        for a in acks:
            n = conn.execute("SELECT COUNT(*) FROM label_events WHERE action_id = ?",
                             (a["action"],)).fetchone()[0]
            found += int(n == a["changed"])
    trainer_peak = 0.0
    log = run.paths.log
    peak = max(peak_rss_mb(), server.peak_mb, *(e.peak_mb for e in editors))
    report = {
        "images": args.images, "import_seconds": round(import_seconds, 1),
        "label_edits_acknowledged": len(acks), "label_edits_found": found,
        "edit_conflicts_reported": sum(e.conflicts for e in editors),
        "trainer_kills": trainer_kills, "runs_resumed": resumes,
        "run_final_status": final.status, "run_val_accuracy": final.metrics.get("val_accuracy"),
        "server_starts_ok": server_restarts, "sessions_crashed": crashed_sessions,
        "integrity_check": integrity,
        "peak_memory_mb": round(max(peak, trainer_peak), 1),
        "log": str(log),
    }
    ok = (found == len(acks) and integrity == "ok" and resumes == trainer_kills
          and crashed_sessions == 0
          and final.status == "finished" and report["peak_memory_mb"] < 4096)
    width = max(len(k) for k in report)
    print("\nsoak results")
    for k, v in report.items():
        print(f"  {k.ljust(width)}  {v}")
    print(f"\n{'PASS' if ok else 'FAIL'}: nothing acknowledged lost, every run resumed, "
          f"peak memory under 4 GB" if ok else "\nFAIL: see the counts above")
    (REPO / "bench" / "soak-results.json").write_text(json.dumps({**report, "pass": ok}, indent=2))
    if not args.home:
        shutil.rmtree(home.parent, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
