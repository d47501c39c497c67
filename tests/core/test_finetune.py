"""Fine-tuning: real runs, real weights files, real training steps (tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from core.errors import ImageLabError
from core.finetune.callback import FineTuning
from core.finetune.groups import layer_groups, resolve_freeze, resolve_lr_mults
from core.finetune.lr_finder import lr_find
from core.finetune.setup import FinetuneConfig, create_finetune_run, prepare_finetune
from core.finetune.sources import resolve_source
from core.models import create_model
from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.loop import train_one_epoch
from core.training.optim import set_lr
from core.training.run import build_trainer, train_run
from core.training.runs import get_run
from tests.conftest import REPO, python_env


def _cfg(dataset, **kw):
    return TrainConfig(dataset=dataset, **{"epochs": 1, "batch_size": 64, **kw})


def test_layer_groups_per_architecture():
    def names(arch: str) -> list[str]:
        return [g.name for g in layer_groups(create_model(arch, 10, 1, 32))]
    assert names("compact") == ["stem", "stage2", "stage3", "head"]
    assert names("pytorch-cnn") == ["stem", "stage2", "fc", "head"]
    assert names("resnet18") == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert names("mobilenet_v3_small")[0] == "stem" and names("mobilenet_v3_small")[-2:] == \
        ["classifier", "head"]
    groups = ["stem", "stage2", "stage3", "head"]
    assert resolve_freeze("head", groups) == ["stem", "stage2", "stage3"]
    assert resolve_freeze("last:2", groups) == ["stem", "stage2"]
    assert resolve_freeze("none", groups) == []
    assert resolve_lr_mults("discriminative:0.01", groups) == \
        {"stem": 0.01, "stage2": 0.1, "stage3": 1.0, "head": 1.0} or \
        resolve_lr_mults("discriminative:0.01", groups)["stem"] == 0.01
    with pytest.raises(ImageLabError, match="unknown layer group.*stem, stage2"):
        resolve_freeze("layer9", groups)
    with pytest.raises(ImageLabError, match="GROUP=NUMBER"):
        resolve_lr_mults("stem", groups)


def test_run_to_finetune_on_another_dataset_keeps_shared_head_rows(trained_workspace):
    ws, run_id = trained_workspace
    src = load_checkpoint(ws.runs_dir / run_id / "best.pt")
    run = create_finetune_run(ws, _cfg("mnist-5k"), FinetuneConfig(run_id, freeze="head"))
    assert run.config["arch"] == src["config"]["arch"] and run.config["image_size"] == 8
    info = json.loads((run.folder / "finetune.json").read_text())
    assert info["head"]["kept"] == [str(d) for d in range(10)] and info["head"]["new"] == []
    assert info["source"]["parent_run_id"] == run_id
    init = load_checkpoint(run.folder / "init.pt")["model"]
    head = [g for g in layer_groups(create_model(src["config"]["arch"], 10, 1, 8))
            if g.name == "head"][0]
    for key in head.params:     # digits "3" row is mnist "3" row
        assert torch.equal(init[key], src["model"][key])
    with ws.db() as conn:
        row = conn.execute("SELECT kind, parent_run_id FROM runs WHERE id=?", (run.id,)).fetchone()
    assert tuple(row) == ("finetune", run_id)
    summary = train_run(ws, run.id, callbacks=[FineTuning()])
    assert summary["status"] == "finished"
    assert get_run(ws, run.id).config["finetune"]["origin"]["kind"] == "run"
    # classes that are not shared get fresh rows, and the report says so
    other = prepare_finetune(ws, _cfg("shapes"), FinetuneConfig(run_id))
    assert other.head["kept"] == [] and len(other.head["new"]) >= 2


def test_frozen_groups_do_not_move_and_their_batchnorm_stats_stay(trained_workspace):
    ws, run_id = trained_workspace
    prep = prepare_finetune(ws, _cfg("mnist-5k", batch_size=128),
                            FinetuneConfig(run_id, freeze="head"))
    t = build_trainer(ws, prep.cfg, callbacks=[FineTuning()])
    t.steps_per_epoch = 3
    before = {k: v.clone() for k, v in t.bare_model.state_dict().items()}
    assert train_one_epoch(t)
    after = t.bare_model.state_dict()
    head_keys = {p for g in layer_groups(t.bare_model) if g.name == "head" for p in g.params}
    for key, value in before.items():
        if key in head_keys:
            assert not torch.equal(value, after[key]), key
        else:            # weights, biases, BN running mean/var and counters of frozen groups
            assert torch.equal(value, after[key]), key


def test_lr_multipliers_land_in_the_optimizer(trained_workspace):
    ws, run_id = trained_workspace
    prep = prepare_finetune(ws, _cfg("mnist-5k"), FinetuneConfig(
        run_id, lr_mults="stem=0.1,stage2=0.25"))
    t = build_trainer(ws, prep.cfg, callbacks=[FineTuning()])
    set_lr(t.optimizer, 0.2)
    by_group = {g["group"]: g["lr"] for g in t.optimizer.param_groups}
    assert by_group == pytest.approx({"stem": 0.02, "stage2": 0.05, "stage3": 0.2, "stage4": 0.2,
                                      "head": 0.2})
    n_params = sum(len(g["params"]) for g in t.optimizer.param_groups)
    assert n_params == len(list(t.bare_model.parameters()))


def test_gradual_unfreezing_switches_at_epoch_k(trained_workspace):
    ws, run_id = trained_workspace
    prep = prepare_finetune(ws, _cfg("mnist-5k", epochs=3),
                            FinetuneConfig(run_id, freeze="head", unfreeze_after=2))
    t = build_trainer(ws, prep.cfg, callbacks=[FineTuning()])
    t.steps_per_epoch = 2
    stem = t.bare_model[0].weight
    for epoch, trainable in ((0, False), (1, False), (2, True)):
        t.epoch, t.step, t.accum = epoch, 0, {}
        w = stem.detach().clone()
        train_one_epoch(t)
        assert stem.requires_grad is trainable
        assert (not torch.equal(w, stem.detach())) is trainable, epoch


def test_lr_finder_suggests_a_finite_rate(trained_workspace):
    ws, run_id = trained_workspace
    prep = prepare_finetune(ws, _cfg("mnist-5k"), FinetuneConfig(run_id))
    res = lr_find(ws, prep.cfg, steps=30)
    assert len(res["lrs"]) == len(res["losses"]) >= 10
    assert all(b > a for a, b in zip(res["lrs"], res["lrs"][1:]))
    assert 1e-5 <= res["suggested_lr"] <= 10 and torch.isfinite(torch.tensor(res["suggested_lr"]))


def test_imagenet_weights_offline_missing_file_names_it(sample_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("IMAGELAB_OFFLINE", "1")     # never try a download in tests
    with pytest.raises(ImageLabError) as err:
        resolve_source(sample_workspace, "resnet18:imagenet")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg


def test_imagenet_weights_placed_in_torch_home_load_offline(sample_workspace, tmp_path,
                                                             monkeypatch):
    import torchvision
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("IMAGELAB_OFFLINE", "1")
    torch.manual_seed(3)
    placed = torchvision.models.resnet18().state_dict()     # random weights, the real layout
    torch.save(placed, folder / "resnet18-f37072fd.pth")
    prep = prepare_finetune(sample_workspace, _cfg("digits", batch_size=32, image_size=32),
                            FinetuneConfig("resnet18:imagenet", freeze="last:2"))
    assert prep.cfg.arch == "resnet18" and prep.cfg.finetune["mean"] == pytest.approx([0.449])
    # grey digits: the RGB stem filters are summed; the body is the placed weights
    assert torch.allclose(prep.init["model"]["conv1.weight"],
                          placed["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(prep.init["model"]["layer3.0.conv1.weight"],
                       placed["layer3.0.conv1.weight"])
    assert prep.cfg.finetune["frozen"] == ["stem", "layer1", "layer2", "layer3"]
    t = build_trainer(sample_workspace, prep.cfg, callbacks=[FineTuning()])
    t.steps_per_epoch = 1
    assert train_one_epoch(t)
    assert t.data.mean == pytest.approx([0.449])
    assert torch.equal(t.bare_model.layer1[0].conv1.weight.detach(),
                       placed["layer1.0.conv1.weight"])


def test_bad_weight_files_are_refused_clearly(sample_workspace, tmp_path):
    ws = sample_workspace
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights")
    with pytest.raises(ImageLabError, match="cannot be read"):
        resolve_source(ws, str(text))
    # Cut short, random bytes, a zip that is not torch's: a plain reason, never the
    # unpickler's or torch's inner text ("pop from empty list", "Could this error message…").
    whole = tmp_path / "whole.pth"
    torch.save({"model": {"w": torch.ones(50_000)}}, whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:20_000])
    hello = tmp_path / "hello.pth"
    hello.write_bytes(b"hello")
    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(range(256)) * 12)
    for bad in (cut, hello, noise):
        with pytest.raises(ImageLabError, match="cannot be read") as err:
            resolve_source(ws, str(bad))
        reason = str(err.value).rsplit("(", 1)[1]
        assert reason in ("its archive is damaged or incomplete)",
                          "its bytes end early or are not a checkpoint's)",
                          "not a torch.save file, or one holding Python objects that are never "
                          "run)"), str(err.value)
    junk = tmp_path / "junk.pth"
    torch.save({"epochs": 3, "name": "x"}, junk)
    with pytest.raises(ImageLabError, match="not a model checkpoint"):
        resolve_source(ws, str(junk))
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 40)
    with pytest.raises(ImageLabError, match="not a readable .safetensors"):
        resolve_source(ws, str(bad_st))
    wide = tmp_path / "wide.pt"
    torch.save(create_model("wide", 10, 1, 16).state_dict(), wide)
    with pytest.raises(ImageLabError, match="does not say which architecture"):
        prepare_finetune(ws, _cfg("digits"), FinetuneConfig(str(wide)))
    with pytest.raises(ImageLabError) as err:
        prepare_finetune(ws, _cfg("digits", arch="compact"), FinetuneConfig(str(wide)))
    assert "0.weight (checkpoint (64, 1, 3, 3), model (32, 1, 3, 3))" in str(err.value)
    assert "does not fit" in str(err.value)


def test_safetensors_and_plain_state_dicts_load(sample_workspace, tmp_path):
    from safetensors.torch import save_file
    model = create_model("compact", 10, 1, 16)
    path = tmp_path / "compact.safetensors"
    save_file(model.state_dict(), str(path),
              metadata={"arch": "compact", "class_names": json.dumps([str(i) for i in range(10)])})
    prep = prepare_finetune(sample_workspace, _cfg("digits", image_size=16),
                            FinetuneConfig(str(path)))
    assert prep.head["kept"] == [str(i) for i in range(10)]
    assert torch.equal(prep.init["model"]["4.weight"], model.state_dict()["4.weight"])
    plain = tmp_path / "compact.pth"
    torch.save(model.state_dict(), plain)
    prep = prepare_finetune(sample_workspace, _cfg("digits", image_size=16, arch="compact"),
                            FinetuneConfig(str(plain)))
    assert prep.head["kept"] == [] and "no class names" in " ".join(prep.head["adapted"])


def test_cli_finetune_and_lr_find_print_one_json_document(trained_workspace):
    ws, run_id = trained_workspace
    cmd = [sys.executable, "-m", "core", "finetune", "--from", run_id, "--dataset", "mnist-5k",
           "--freeze", "last:2", "--lr-mult", "discriminative:0.1", "--epochs", "1",
           "--threads", "1", "--json"]
    p = subprocess.run(cmd, cwd=REPO, env=python_env(ws.root), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "finished" and out["kind"] == "finetune"
    assert out["frozen"] == ["stem", "stage2", "stage3"]         # all but stage4 and the head
    assert out["source"]["parent_run_id"] == run_id
    assert len(out["head"]["kept"]) == 10
    p = subprocess.run([sys.executable, "-m", "core", "lr-find", "--from", run_id, "--dataset",
                        "mnist-5k", "--steps", "20", "--threads", "1", "--json"], cwd=REPO,
                       env=python_env(ws.root), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["suggested_lr"] > 0
    p = subprocess.run([sys.executable, "-m", "core", "finetune", "--from", "no-such-run",
                        "--dataset", "digits", "--json"], cwd=REPO, env=python_env(ws.root),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "neither a run" in json.loads(p.stdout)["error"]


def test_lr_suggestion_on_flat_and_valley_curves():
    import numpy as np

    from core.finetune.lr_finder import suggest
    lrs = list(np.logspace(-5, 1, 60))
    # flat, then it explodes: the minimum's rate / 10, not the first noisy point
    flat = [1.9 + 0.001 * np.sin(i) for i in range(50)] + [2 + 2 ** k for k in range(10)]
    s = suggest(lrs, flat)
    assert 0.05 < s["suggested_lr"] * 10 < 1.0   # a tenth of the last rate before the rise
    # a clear valley: steepest descent, inside the falling part
    valley = [2.3 - 2.0 / (1 + np.exp(-(np.log10(lr) + 2.5) * 3)) for lr in lrs[:45]] + \
             [0.3 + 0.5 * k for k in range(15)]
    s = suggest(lrs, valley)
    assert s["suggested_lr"] == s["steepest_lr"] and 1e-4 < s["suggested_lr"] < 1e-2
    # flat with noise, a shallow dip near 0.02, then it blows up (the curve of a browser
    # journey's fine-tune): the steepest wiggle at 1e-4 is noise, the minimum's rate / 10 is
    # taken
    rng = np.random.default_rng(0)
    dip = [1.9 + 0.01 * rng.standard_normal() - 0.12 * np.exp(-((np.log10(lr) + 1.7) / 0.3) ** 2)
           for lr in lrs[:53]] + [2 + 2 ** k for k in range(7)]
    dip[13] += 0.06                                        # the wiggle, near 1e-4
    dip[15] -= 0.06
    s = suggest(lrs, dip)
    assert s["steepest_lr"] < 1e-3 and s["loss_drop"] >= 0.05
    assert s["suggested_lr"] == s["min_over_10_lr"] and 1e-3 < s["suggested_lr"] < 5e-3
    # a low first batch (the journey's next curve: 1.5, then about 1.7 until a dip at 0.01):
    # the start is the warm-up's median, so neither the minimum nor the suggestion sits at
    # the first rate
    low_first = [1.5] + [1.7 + 0.01 * rng.standard_normal()
                         - 0.2 * np.exp(-((np.log10(lr) + 2) / 0.4) ** 2) for lr in lrs[1:52]] + \
        [2 + 2 ** k for k in range(8)]
    s = suggest(lrs, low_first)
    assert 1e-3 < s["min_loss_lr"] < 0.1 and 1e-4 < s["suggested_lr"] < 0.05
