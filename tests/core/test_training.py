"""The engine on real sample images: CLI summary, checkpoints, stop/resume determinism,
and a clear message for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from core.data.ingest import DatasetWriter
from core.errors import ImageLabError
from core.store.run_paths import RunPaths
from core.training.callbacks import Callback
from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.loop import prepare_batch, train_step
from core.training.run import build_trainer, train_run
from core.training.runs import create_run, get_run, prepare_config, read_metrics, read_status
from tests.conftest import REPO, python_env

TINY = dict(dataset="digits", image_size=8, epochs=2, batch_size=64, threads=1)


def cli(home, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=python_env(home),
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_train_prints_progress_and_one_json_summary(sample_workspace):
    proc = cli(sample_workspace.root, "train", "--dataset", "digits", "--image-size", "8",
               "--epochs", "3", "--threads", "1", "--json")
    summary = json.loads(proc.stdout)                   # stdout is exactly one JSON document
    assert summary["status"] == "finished"
    m = summary["metrics"]
    assert m["epochs"] == 3 and m["seconds"] > 0
    assert m["val_accuracy"] > 0.5, m                  # 10 classes: chance is 0.1
    assert "epoch 3/3" in proc.stderr
    run = get_run(sample_workspace, summary["run_id"])
    assert run.status == "finished" and run.dataset == "digits"
    assert run.label_version is not None and run.label_version > 0
    assert run.metrics["val_accuracy"] == pytest.approx(m["val_accuracy"])
    for name in ("config.json", "classes.json", "status.json", "metrics.jsonl", "last.pt", "best.pt"):
        assert (run.folder / name).exists(), name
    assert json.loads((run.folder / "classes.json").read_text()) == [str(i) for i in range(10)]
    epochs = [r for r in read_metrics(run.folder) if r["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert all(e["images_per_sec"] > 0 for e in epochs)
    ckpt = load_checkpoint(run.folder / "best.pt")
    assert ckpt["epoch"] == 3 and ckpt["class_names"][0] == "0"
    # held-out predictions for label review: one softmax row per validation image
    with np.load(run.folder / "predictions_val.npz") as p:
        assert str(p["source"]) == "val" and p["probs"].shape == (269, 10)
        assert np.allclose(p["probs"].sum(1), 1, atol=1e-4)
        assert len(set(p["image_ids"].tolist())) == 269
        assert int(p["label_version"]) == run.label_version


def test_cli_user_errors_exit_2_with_one_line(sample_workspace):
    proc = cli(sample_workspace.root, "train", "--dataset", "digits", "--batch-size", "5000",
               "--json", check=False)
    assert proc.returncode == 2
    assert "larger than the 1259 training images" in json.loads(proc.stdout)["error"]
    proc = cli(sample_workspace.root, "train", "--dataset", "nope", check=False)
    assert proc.returncode == 2 and "unknown dataset 'nope'" in proc.stderr


def test_yaml_config_with_flag_overrides(sample_workspace, tmp_path):
    from core.cli.commands.train import config_from_args
    from core.cli.main import build_parser
    path = tmp_path / "c.yaml"
    path.write_text("dataset: digits\narch: keras-mnist\nepochs: 5\nlr: 0.01\nflip: true\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--epochs", "2"])
    cfg = config_from_args(args)
    assert (cfg.arch, cfg.epochs, cfg.lr, cfg.flip) == ("keras-mnist", 2, 0.01, True)
    path.write_text("dataset: digits\nepochz: 5\n")
    with pytest.raises(ImageLabError, match="unknown training option.*epochz"):
        config_from_args(build_parser().parse_args(["train", "--config", str(path)]))


def test_defaults_adapt_to_the_dataset(sample_workspace):
    mnist = create_run(sample_workspace, TrainConfig(dataset="mnist-5k")).config
    shapes = create_run(sample_workspace, TrainConfig(dataset="shapes")).config
    assert mnist["image_size"] == 28 and shapes["image_size"] == 32
    assert mnist["flip"] is False and mnist["rotation"] > 0       # digits are never mirrored
    assert shapes["flip"] is True and shapes["color_jitter"] > 0
    assert mnist["batch_size"] > shapes["batch_size"]
    assert shapes["epochs"] >= mnist["epochs"]                      # fewer images, more passes
    assert mnist["precision"] in ("bf16", "fp32")


class StopAt(Callback):
    """Writes the run's STOP file at a given step, as `runs stop` would."""

    def __init__(self, folder, epoch, step):
        self.folder, self.epoch, self.step = folder, epoch, step

    def on_step(self, m):
        if (m["epoch"], m["step"]) == (self.epoch, self.step):
            RunPaths(self.folder).stop.write_text("stop")


def _weights(folder):
    return load_checkpoint(folder / "last.pt")["model"]


def test_stop_then_resume_reaches_the_same_weights_as_an_uninterrupted_run(sample_workspace):
    ws = sample_workspace
    cfg = TrainConfig(**TINY, deterministic=True, log_every=1, rotation=10.0, flip=True,
                      color_jitter=0.2, arch="compact")
    straight = create_run(ws, cfg)
    assert train_run(ws, straight.id)["status"] == "finished"

    broken = create_run(ws, cfg)
    stopped = train_run(ws, broken.id, callbacks=[StopAt(broken.folder, 1, 5)])
    assert stopped["status"] == "stopped" and "resume" in stopped["message"]
    ckpt = load_checkpoint(broken.folder / "last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 5)             # exactly at the step boundary
    assert get_run(ws, broken.id).status == "stopped"
    assert read_status(broken.folder)["status"] == "stopped"
    assert not broken.paths.stop.exists()

    resumed = train_run(ws, broken.id, resume=True)
    assert resumed["status"] == "finished" and resumed["metrics"]["epochs"] == 2
    a, b = _weights(straight.folder), _weights(broken.folder)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k                     # bitwise equal
    assert resumed["metrics"]["val_accuracy"] == pytest.approx(
        get_run(ws, straight.id).metrics["val_accuracy"])


def test_nan_loss_stops_the_run_and_says_so(sample_workspace):
    run = create_run(sample_workspace, TrainConfig(**{**TINY, "epochs": 3}, optimizer="sgd",
                                                   lr=90.0, precision="fp32", label_smoothing=0,
                                                   log_every=1, arch="keras-mnist"))
    with pytest.raises(ImageLabError, match="loss became (nan|inf)"):
        train_run(sample_workspace, run.id)
    run = get_run(sample_workspace, run.id)
    assert run.status == "failed" and "lower learning rate" in run.message
    assert read_status(run.folder)["status"] == "failed"


def _make_dataset(ws, name, labels):
    """A small real dataset made of sample digit images, with the given labels."""
    from sklearn.datasets import load_digits
    images = load_digits().images
    with DatasetWriter(ws, name, "test", build_cache=False) as w:
        for k, label in enumerate(labels):
            w.add_array((images[k] * 16).astype(np.uint8), original_name=f"{k}.png", label=label)
        w.commit()


def test_bad_datasets_get_clear_messages(sample_workspace):
    ws = sample_workspace
    _make_dataset(ws, "one-class", ["cat"] * 40)
    with pytest.raises(ImageLabError, match="at least two"):
        create_run(ws, TrainConfig(dataset="one-class"))
    from core.labels.classes import add_class
    add_class(ws, "digits", "eleven")
    with pytest.raises(ImageLabError, match="'eleven' of dataset 'digits' has no labelled images"):
        create_run(ws, TrainConfig(dataset="digits"))
    with pytest.raises(ImageLabError, match="larger than the 420 training images"):
        create_run(ws, TrainConfig(dataset="shapes", batch_size=1000))


def test_resume_with_a_changed_dataset_is_refused(sample_workspace):
    ws = sample_workspace
    run = create_run(ws, TrainConfig(**TINY, log_every=1))
    assert train_run(ws, run.id, callbacks=[StopAt(run.folder, 0, 3)])["status"] == "stopped"
    from core.labels.relabel import move_to_split
    with ws.db() as conn:
        image_id, = conn.execute("SELECT i.id FROM images i JOIN datasets d ON d.id = i.dataset_id "
                                 "WHERE d.name='digits' AND i.split='train' LIMIT 1").fetchone()
    move_to_split(ws, "digits", [image_id], "test")   # the run's training images changed
    with pytest.raises(ImageLabError, match="changed since this run started"):
        train_run(ws, run.id, resume=True)


def test_relabelling_while_a_run_is_stopped_does_not_block_its_resume(sample_workspace):
    """A run trains on the label version it started on; later edits are for the next run."""
    ws = sample_workspace
    run = create_run(ws, TrainConfig(**TINY, log_every=1))
    assert run.config["label_version"] == run.label_version > 0
    assert train_run(ws, run.id, callbacks=[StopAt(run.folder, 0, 3)])["status"] == "stopped"
    from core.labels.relabel import relabel_image
    with ws.db() as conn:
        image_id, = conn.execute("SELECT i.id FROM images i JOIN classes c ON c.id = i.class_id "
                                 "JOIN datasets d ON d.id = i.dataset_id WHERE d.name='digits' "
                                 "AND i.split='train' AND c.name='3' LIMIT 1").fetchone()
    relabel_image(ws, "digits", image_id, "8", expected="3")
    assert train_run(ws, run.id, resume=True)["status"] == "finished"
    nxt = create_run(ws, TrainConfig(**TINY))
    assert nxt.label_version > run.label_version     # the next run sees the fix


def test_full_disk_while_saving_keeps_the_old_checkpoint(tmp_path):
    # A real write failure: the file-size limit makes the kernel refuse the write (EFBIG).
    script = f"""
import resource, torch
from pathlib import Path
from core.training.checkpoint import save_checkpoint, load_checkpoint
from core.errors import ImageLabError
path = Path({str(tmp_path)!r}) / "last.pt"
save_checkpoint({{"w": torch.ones(10)}}, path)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    save_checkpoint({{"w": torch.zeros(1_000_000)}}, path)
except ImageLabError as exc:
    print("ERROR", exc)
print("KEPT", load_checkpoint(path)["w"].sum().item())
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert "ERROR no space left on the disk while saving checkpoint last.pt" in out.stdout, out
    assert "KEPT 10.0" in out.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]   # no temp file left behind


def test_training_on_a_past_label_version_uses_the_labels_of_then(sample_workspace):
    from core.labels.relabel import relabel_image
    from core.training.data import labelled_images
    ws = sample_workspace
    names, rows, before = labelled_images(ws, "digits")
    image_id, label, _ = next(r for r in rows if names[r[1]] == "3" and r[2] == "train")
    relabel_image(ws, "digits", image_id, "8", expected="3")
    names_now, now, after = labelled_images(ws, "digits")
    assert after > before and names_now[dict((i, c) for i, c, _ in now)[image_id]] == "8"
    names_then, then, version = labelled_images(ws, "digits", before)
    assert version == before and names_then[dict((i, c) for i, c, _ in then)[image_id]] == "3"
    run = create_run(ws, TrainConfig(**TINY, label_version=before))
    assert run.label_version == before
    assert train_run(ws, run.id)["status"] == "finished"
    with pytest.raises(ImageLabError, match="no label version"):
        labelled_images(ws, "digits", after + 100)


class Checkpoints(Callback):
    def __init__(self):
        self.seen = []

    def on_checkpoint(self, path, kind):
        ckpt = load_checkpoint(path)
        self.seen.append((kind, ckpt["epoch"], ckpt["step"]))


def test_a_killed_trainer_resumes_from_its_last_mid_epoch_checkpoint(sample_workspace, monkeypatch):
    """With a checkpoint at every logging step, a run 'killed' mid-epoch (we resume from its
    last mid-epoch last.pt) ends with the weights of an uninterrupted run."""
    import core.training.loop as loop
    ws = sample_workspace
    cfg = TrainConfig(**TINY, deterministic=True, log_every=2, arch="compact")
    straight = create_run(ws, cfg)
    assert train_run(ws, straight.id)["status"] == "finished"

    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 0.0)
    saved = Checkpoints()
    run = create_run(ws, cfg)
    assert train_run(ws, run.id, callbacks=[saved])["status"] == "finished"
    mid = [s for s in saved.seen if s[0] == "last" and s[2] > 0]
    assert mid, saved.seen                                   # saved inside epochs, not only at ends
    # Simulate the kill: go back to a mid-epoch checkpoint and resume from it.
    kind, epoch, step = mid[0]
    again = create_run(ws, cfg)
    stop = StopAt(again.folder, epoch, step)
    assert train_run(ws, again.id, callbacks=[stop])["status"] == "stopped"
    assert train_run(ws, again.id, resume=True)["status"] == "finished"
    a, b = _weights(straight.folder), _weights(again.folder)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _weights(run.folder)                                   # periodic saves changed nothing
    assert all(torch.equal(a[k], c[k]) for k in a)



class HookLog(Callback):
    """Records the trainer hooks as (hook, epoch, step) and the trainer they were given."""

    def __init__(self):
        self.calls, self.trainers = [], set()

    def _note(self, hook, trainer):
        self.calls.append((hook, trainer.epoch, trainer.step))
        self.trainers.add(id(trainer))

    def setup(self, trainer):
        self._note("setup", trainer)

    def on_start(self, info):
        self.calls.append(("start", info["resume_epoch"], info["resume_global_step"]))

    def on_train_epoch_start(self, trainer):
        assert trainer.model.training                  # called after model.train()
        self._note("epoch_start", trainer)

    def on_validation_end(self, trainer, record):
        assert record["epoch"] == trainer.epoch - 1    # the epoch just validated
        self._note("validated", trainer)

    def on_fit_end(self, trainer, status):
        self.calls.append(("fit_end", status, trainer.epoch))


def test_callback_trainer_hooks_come_in_order_with_the_trainer(sample_workspace):
    ws = sample_workspace
    log = HookLog()
    run = create_run(ws, TrainConfig(**TINY))
    assert train_run(ws, run.id, callbacks=[log])["status"] == "finished"
    assert log.calls == [("setup", 0, 0), ("start", 0, 0),
                         ("epoch_start", 0, 0), ("validated", 1, 0),
                         ("epoch_start", 1, 0), ("validated", 2, 0),
                         ("fit_end", "finished", 2)]
    assert len(log.trainers) == 1


def test_resumed_run_calls_epoch_start_at_its_mid_epoch_step(sample_workspace):
    ws = sample_workspace
    run = create_run(ws, TrainConfig(**TINY, log_every=2))
    assert train_run(ws, run.id, callbacks=[StopAt(run.folder, 0, 4)])["status"] == "stopped"
    log = HookLog()
    assert train_run(ws, run.id, resume=True, callbacks=[log])["status"] == "finished"
    # setup runs before the checkpoint is restored; the epoch restarts at the saved step
    assert log.calls[:3] == [("setup", 0, 0), ("start", 0, 4), ("epoch_start", 0, 4)]


def test_a_finetune_config_without_its_callback_is_refused(sample_workspace):
    cfg = prepare_config(sample_workspace, TrainConfig(**TINY))
    cfg.finetune = {"source": "compact:imagenet"}
    with pytest.raises(ImageLabError, match="no callback applies it.*FineTuning"):
        build_trainer(sample_workspace, cfg)


def test_train_step_clips_the_gradient_norm(sample_workspace):
    """The one step that training, the LR finder and the probe share honours grad_clip."""
    norms = {}
    for clip in (0.0, 0.01):
        cfg = prepare_config(sample_workspace, TrainConfig(**TINY, grad_clip=clip,
                                                           precision="fp32"))
        t = build_trainer(sample_workspace, cfg)
        x, y = prepare_batch(t, t.data.train, torch.arange(cfg.batch_size), train=True)
        assert x.shape[0] == cfg.batch_size and y.shape == (cfg.batch_size,)
        loss, logits = train_step(t, x, y, cfg.lr)
        assert torch.isfinite(loss) and logits.shape == (cfg.batch_size, 10)
        grads = [p.grad for p in t.model.parameters() if p.grad is not None]
        norms[clip] = torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])).item()
    assert norms[0.0] > 0.01                                 # unclipped: larger than the clip
    assert norms[0.01] == pytest.approx(0.01, rel=1e-3)      # clipped to exactly the norm
