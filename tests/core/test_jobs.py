"""Background runs as real OS processes: queue, stop at a step, resume, and a killed
process marked failed with its log."""

from __future__ import annotations

import os
import signal
import time

from core.training import jobs
from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.runs import get_run, read_metrics, read_status


def wait_for(predicate, timeout=120, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def steps_done(run):
    return sum(1 for r in read_metrics(run.folder) if r["type"] == "step")


def status_of(ws, run_id):
    jobs.refresh(ws)
    return get_run(ws, run_id).status


def test_queue_stop_and_resume_a_background_run(sample_workspace):
    ws = sample_workspace
    long = TrainConfig(dataset="digits", image_size=8, epochs=200, batch_size=32, threads=1,
                       log_every=1)
    first = jobs.start_run(ws, long)
    second = jobs.start_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1,
                                            batch_size=64, threads=1))
    assert get_run(ws, second.id).status == "queued"      # one job at a time per device
    wait_for(lambda: steps_done(first) >= 3, what="first steps")
    assert status_of(ws, first.id) == "running"
    assert status_of(ws, second.id) == "queued"
    pid = get_run(ws, first.id).pid
    assert pid and pid != os.getpid()

    jobs.stop_run(ws, first.id)
    wait_for(lambda: status_of(ws, first.id) == "stopped", what="stop")
    ckpt = load_checkpoint(first.folder / "last.pt")
    status = read_status(first.folder)
    assert status["status"] == "stopped" and ckpt["epoch"] < 200
    last = [r for r in read_metrics(first.folder) if r["type"] == "step"][-1]
    if ckpt["step"]:     # stopped mid-epoch: right after the last step it logged
        assert (last["epoch"], last["step"]) == (ckpt["epoch"], ckpt["step"])
    else:                # stopped at an epoch boundary
        assert last["epoch"] == ckpt["epoch"] - 1
    # the queue moves on: the second run starts and finishes by itself
    wait_for(lambda: status_of(ws, second.id) == "finished", what="second run")
    assert get_run(ws, second.id).metrics["val_accuracy"] > 0

    stopped_at = (ckpt["epoch"], ckpt["step"])
    jobs.resume_run(ws, first.id)
    wait_for(lambda: read_status(first.folder).get("resumed") and
             status_of(ws, first.id) == "running", what="resume")

    def resumed_steps():
        return [(r["epoch"], r["step"]) for r in read_metrics(first.folder)
                if r["type"] == "step" and (r["epoch"], r["step"]) > stopped_at]

    wait_for(lambda: len(resumed_steps()) >= 2, what="steps after resume")
    resumed_steps = resumed_steps()
    assert resumed_steps and resumed_steps[0] == (stopped_at[0], stopped_at[1] + 1)
    jobs.stop_run(ws, first.id)
    wait_for(lambda: status_of(ws, first.id) == "stopped", what="second stop")
    assert "resume to continue" in get_run(ws, first.id).message


def test_a_killed_training_process_is_marked_failed_with_its_log(sample_workspace):
    ws = sample_workspace
    run = jobs.start_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=200,
                                         batch_size=32, threads=1, log_every=1))
    wait_for(lambda: steps_done(run) >= 2, what="first steps")
    pid = get_run(ws, run.id).pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status_of(ws, run.id) == "failed", what="failed status")
    failed = get_run(ws, run.id)
    assert "died unexpectedly" in failed.message
    assert f"{failed.config['arch']} on digits" in failed.message   # the tail of its log
    assert read_status(run.folder)["status"] == "failed"
    with ws.db() as conn:
        job = conn.execute("SELECT status FROM jobs WHERE run_id=?", (run.id,)).fetchone()
    assert job["status"] == "failed"
