"""Durability: a process doing bulk relabels and undos is killed (SIGKILL) at random
moments, many times. Afterwards the database passes integrity_check, every
acknowledged action is there in full, and no action is half-applied."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from core.data.samples import import_sample
from tests.conftest import REPO, python_env

# The worker: bulk edits of many images each; prints "ACK <action id> <n>" only
# after the transaction committed.
WORKER = r"""
import random, sys
from core.store.workspace import open_workspace
from core.labels import history, relabel
from core.labels.selection import ImageFilter, matching_labels
ws = open_workspace()
rng = random.Random(int(sys.argv[1]))
classes = [str(d) for d in range(10)]
print("READY", flush=True)
while True:
    if rng.random() < 0.2:
        try:
            res = history.undo_last_action(ws, "digits", user="killer")
        except Exception as exc:
            continue
        print(f"ACK {res.action_id} {res.changed} undo", flush=True)
        continue
    labels = matching_labels(ws, "digits", ImageFilter())
    ids = rng.sample(sorted(labels), 1200)
    target = rng.choice(classes + [None])
    chosen = {i: labels[i] for i in ids}
    n = sum(1 for i in ids if labels[i] != target)
    res = relabel.set_label(ws, "digits", chosen, target, user="killer",
                      description=f"bulk n={n}")
    print(f"ACK {res.action_id} {res.changed} bulk", flush=True)
"""


def test_bulk_edits_survive_random_sigkill(workspace):
    import_sample(workspace, "sample:digits")
    env = python_env(workspace.root)
    rng = random.Random(1234)
    acked: list[tuple[int, int, str]] = []
    kills = 0
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline or kills < 8:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(kills)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 1.2))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        for line in out.splitlines():
            if line.startswith("ACK "):
                _, action, n, kind = line.split()
                acked.append((int(action), int(n), kind))
        kills += 1
        if kills >= 30:
            break
    assert kills >= 8 and len(acked) >= 5, (kills, acked)

    with sqlite3.connect(workspace.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        events = dict(conn.execute("SELECT action_id, COUNT(*) FROM label_events GROUP BY action_id"))
        actions = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            "SELECT id, kind, description, undone_by FROM actions")}
        # Every acknowledged action is present with all of its events.
        for action, n, kind in acked:
            assert action in actions, f"acknowledged action {action} is missing"
            assert events.get(action, 0) == n, (action, n, events.get(action))
            assert actions[action][0] == {"bulk": "bulk_relabel", "undo": "undo"}[kind], \
                (action, kind, actions[action])
        # No half-applied action: each bulk action has exactly the events it announced,
        # and each undo has as many events as the action it undid.
        for action, (kind, desc, undone_by) in actions.items():
            if kind == "bulk_relabel":
                assert events.get(action, 0) == int(desc.split("n=")[1]), (action, desc)
            if undone_by is not None:
                assert events.get(undone_by, 0) == events.get(action, 0)
        # The labels are exactly what the last events say.
        bad = conn.execute(
            "SELECT COUNT(*) FROM images i JOIN label_events e ON e.id = "
            "(SELECT MAX(id) FROM label_events WHERE image_id = i.id) "
            "WHERE i.class_id IS NOT e.new_class_id").fetchone()[0]
        assert bad == 0
        unacked_commits = len([a for a in actions if actions[a][1] != ""]) - len(acked)
    # Some kills landed between a commit and its acknowledgement at most once each.
    assert 0 <= unacked_commits <= kills
