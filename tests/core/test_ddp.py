"""``torchrun --nproc-per-node 2 -m core train``: DistributedDataParallel on 2 CPU
processes (gloo); rank 0 alone writes the run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from core.training.checkpoint import load_checkpoint
from core.training.runs import get_run, list_runs, read_status
from tests.conftest import REPO, python_env


def test_torchrun_two_cpu_processes(sample_workspace):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"),
           "--standalone", "--nproc-per-node", "2", "-m", "core", "train",
           "--dataset", "digits", "--image-size", "8", "--epochs", "2", "--batch-size", "32",
           "--json"]
    proc = subprocess.run(cmd, cwd=REPO, env=python_env(sample_workspace.root),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)        # one JSON document: only rank 0 prints
    assert summary["status"] == "finished" and summary["metrics"]["epochs"] == 2
    assert summary["metrics"]["val_accuracy"] > 0.3
    runs = list_runs(sample_workspace)
    assert [r.id for r in runs] == [summary["run_id"]]      # one run, written by rank 0
    status = read_status(get_run(sample_workspace, summary["run_id"]).folder)
    assert status["world_size"] == 2
    assert status["steps_per_epoch"] == 1259 // (32 * 2)    # each rank takes half a global batch
    ckpt = load_checkpoint(runs[0].folder / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["model"])  # the bare model is saved
