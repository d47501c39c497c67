"""The active label queue on a real trained run, retraining as a normal run, and the
simulated-oracle experiment (which must never touch the stored labels)."""

import json
import time

import pytest
from PIL import Image

from core.active.queue import active_queue, best_run
from core.active.retrain import labels_since, start_retrain
from core.active.simulate import simulate, simulation_embedder
from core.active.strategies import uncertainty
from core.cli.main import main as cli_main
from core.errors import ImageLabError
from core.labels.history import label_history, list_actions, undo_last_action
from core.labels.relabel import relabel
from core.labels.selection import ImageFilter, get_image, matching_labels
from core.training import jobs
from core.training.run_model import load_run_model
from core.training.runs import get_run, list_runs


def unlabel(ws, dataset, n, step=7):
    """Take the labels off ``n`` images (every ``step``-th); returns {id: old label}."""
    labels = matching_labels(ws, dataset, ImageFilter())
    chosen = dict(list(sorted(labels.items()))[::step][:n])
    relabel(ws, dataset, [(i, old, None) for i, old in chosen.items()])
    return chosen


def test_queue_orders_unlabelled_images_by_margin_with_the_run_s_guess(trained_workspace):
    ws, run_id = trained_workspace
    truth = unlabel(ws, "digits", 40)
    q = active_queue(ws, "digits", "margin", limit=10)
    assert q.run_id == run_id == best_run(ws, "digits") and q.strategy == "margin"
    assert q.unlabelled == 40 and len(q.items) == 10 and q.message == ""
    assert {i.image_id for i in q.items} <= set(truth)
    # every image's probabilities, predicted independently from its file
    lm = load_run_model(ws, run_id)
    ids = sorted(truth)
    images = [Image.open(get_image(ws, "digits", i).file) for i in ids]
    probs = lm.predict(images)
    margins = dict(zip(ids, uncertainty(probs, "margin")))
    for item in q.items:
        names = [c for c, _ in item.probabilities]
        p = [v for _, v in item.probabilities]
        assert sorted(names) == sorted(lm.classes) and p == sorted(p, reverse=True)
        assert item.predicted == names[0] and abs(sum(p) - 1) < 1e-5
        assert item.score == pytest.approx(1 - (p[0] - p[1]), abs=1e-6)
        assert item.score == pytest.approx(margins[item.image_id], abs=1e-3)
    scores = [i.score for i in q.items]
    assert scores == sorted(scores, reverse=True)
    # the queue's first image is the most uncertain of all 40, its last above the 11th
    ranked = sorted(margins.values(), reverse=True)
    assert scores[0] == pytest.approx(ranked[0], abs=1e-3)
    assert scores[-1] >= ranked[10] - 1e-3
    # the run trained on these images: its guesses are mostly their old labels
    full = active_queue(ws, "digits", "entropy", limit=40)
    right = sum(i.predicted == truth[i.image_id] for i in full.items)
    assert len(full.items) == 40 and right >= 32


def test_queue_without_a_run_is_random_and_says_why(sample_workspace):
    ws = sample_workspace
    unlabel(ws, "digits", 30)
    q = active_queue(ws, "digits", "margin", limit=30)
    assert q.run_id is None and q.strategy == "random" and len(q.items) == 30
    assert "no finished run" in q.message and "random order" in q.message
    assert all(i.predicted == "" and i.probabilities == [] for i in q.items)
    assert [i.image_id for i in q.items] != sorted(i.image_id for i in q.items)
    with pytest.raises(ImageLabError, match="unknown strategy"):
        active_queue(ws, "digits", "smallest")


def test_labels_since_counts_real_label_edits_and_retrain_is_a_normal_run(trained_workspace):
    ws, run_id = trained_workspace
    assert labels_since(ws, "digits", run_id) == 0
    truth = unlabel(ws, "digits", 20)
    assert labels_since(ws, "digits", run_id) == 0      # taking labels off adds none
    ids = sorted(truth)
    relabel(ws, "digits", [(i, None, truth[i]) for i in ids[:5]])
    assert labels_since(ws, "digits", run_id) == 0      # the same labels the run saw
    wrong = [(i, None, "0" if truth[i] != "0" else "1") for i in ids[5:8]]
    relabel(ws, "digits", wrong)
    assert labels_since(ws, "digits", run_id) == 3
    labelled = [i for i, v in sorted(matching_labels(ws, "digits", ImageFilter()).items()) if v]
    other = labelled[-1]
    old = matching_labels(ws, "digits", ImageFilter())[other]
    relabel(ws, "digits", [(other, old, "9" if old != "9" else "8")])
    assert labels_since(ws, "digits", run_id) == 4
    undo_last_action(ws, "digits")
    assert labels_since(ws, "digits", run_id) == 3

    new_id = start_retrain(ws, "digits", run_id)
    before, new = get_run(ws, run_id), get_run(ws, new_id)
    assert new_id in [r.id for r in list_runs(ws, dataset="digits")]   # listed, not hidden
    assert new.kind == "train" and new.label_version > before.label_version
    same = {k: v for k, v in before.config.items() if k != "label_version"}
    assert {k: v for k, v in new.config.items() if k != "label_version"} == same
    deadline = time.time() + 240
    while get_run(ws, new_id).status not in ("finished", "failed") and time.time() < deadline:
        jobs.refresh(ws)
        time.sleep(0.5)
    assert get_run(ws, new_id).status == "finished", get_run(ws, new_id).message
    assert labels_since(ws, "digits", new_id) == 0
    q = active_queue(ws, "digits", "margin", run_id=new_id, limit=5)
    assert q.run_id == new_id and len(q.items) == 5


def test_simulation_curve_and_verdicts_without_touching_the_labels(sample_workspace):
    ws = sample_workspace
    history = [e.to_dict() for e in label_history(ws, "digits", limit=100_000)]
    actions = [a.to_dict() for a in list_actions(ws, "digits")]
    labels = matching_labels(ws, "digits", ImageFilter())
    r = simulate(ws, "digits", ["margin", "diverse"], seeds=2, batch=20, rounds=3, target=0.9)
    assert r.strategies == ["random", "margin", "diverse"] and r.embedder == "pixels"
    assert r.heldout_split == "test" and r.start == 20 and r.max_labels == 80
    assert len(r.curves) == 6
    for c in r.curves:
        assert c.labels == [20, 40, 60, 80]
        assert c.accuracy[0] > 0.3 and c.accuracy[-1] > c.accuracy[0]   # learns from labels
    for seed in range(2):   # one start per seed, shared by every strategy
        assert len({c.accuracy[0] for c in r.curves if c.seed == seed}) == 1
    assert set(r.verdicts) == {"random", "margin", "diverse"}
    for s in ("margin", "diverse"):
        ratio = r.ratio_to_random[s]
        if ratio is not None and ratio >= 1:
            assert "does not beat random" in r.verdicts[s]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["mean_curves"]["margin"]["labels"] == [20, 40, 60, 80]
    # nothing written: the same labels, history and actions
    assert matching_labels(ws, "digits", ImageFilter()) == labels
    assert [e.to_dict() for e in label_history(ws, "digits", limit=100_000)] == history
    assert [a.to_dict() for a in list_actions(ws, "digits")] == actions


def test_simulation_refuses_a_run_s_features(trained_workspace):
    ws, run_id = trained_workspace
    with pytest.raises(ImageLabError, match="leak"):
        simulation_embedder(ws, "digits", "run:" + run_id)


def cli_json(capsys, *args):
    """``python -m core ARGS --json`` in this process: (exit status, the JSON, stderr)."""
    code = cli_main([*args, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_cli_queue_and_al_bench_json(trained_workspace, capsys):
    ws, run_id = trained_workspace
    unlabel(ws, "digits", 12)
    code, q, _ = cli_json(capsys, "queue", "digits", "--strategy", "margin", "--limit", "5")
    assert code == 0
    assert q["run_id"] == run_id and q["strategy"] == "margin" and q["unlabelled"] == 12
    assert len(q["items"]) == 5
    item = q["items"][0]
    assert set(item) == {"image_id", "predicted", "probabilities", "score"}
    assert item["predicted"] == item["probabilities"][0][0]
    code, d, err = cli_json(capsys, "al-bench", "digits", "--strategies", "margin", "--seeds",
                            "1", "--batch", "30", "--rounds", "2")
    assert code == 0
    assert d["strategies"] == ["random", "margin"] and d["batch"] == 30
    assert d["curves"][0]["labels"] == [20, 50, 80] and "margin" in d["verdicts"]
    assert "done" in err                      # progress went to stderr
    code, d, _ = cli_json(capsys, "queue", "digits", "--run", "nope")
    assert code == 2 and "unknown run" in d["error"]
