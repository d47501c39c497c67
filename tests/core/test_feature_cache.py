"""A frozen body costs one forward pass: head-only training on cached body features is the
same model as running the body at every step (``core.finetune.feature_cache``).

Every run here is real: the compact CNN trained on the digits sample (the session's
trained workspace: BatchNorm in the body, dropout before the head) is fine-tuned on digits
again, head only, with horizontal flips on (so the flip draws must line up) and no other
augmentation, once with the cache turned off and once with it on, and the two are
compared weight by weight and epoch by epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.finetune.callback import FineTuning
from core.finetune.groups import layer_groups
from core.finetune.lr_finder import lr_find
from core.finetune.setup import FinetuneConfig, prepare_finetune
from core.training.callbacks import Checkpointing, write_val_predictions
from core.training.checkpoint import load_checkpoint
from core.training.config import TrainConfig
from core.training.run import build_trainer, fit
from core.training.trainer import Callback

FLIP_ONLY = dict(crop="none", rotation=0.0, color_jitter=0.0, flip=True)
TOL = 1e-5      # cached and pixel runs differ at most by float rounding in the body


class Watch(Callback):
    """Counts the images the model's body sees and keeps the epoch records; optionally
    asks for a stop after global step ``stop_at`` (as SIGTERM would)."""

    def __init__(self, stop_at: int = 0):
        self.records, self.body_images, self.stop_at, self.t = [], 0, stop_at, None

    def setup(self, trainer):
        self.t = trainer
        first = next(m for m in trainer.bare_model.modules() if isinstance(m, torch.nn.Conv2d))
        first.register_forward_pre_hook(lambda _m, args: self._count(args[0]))

    def _count(self, x):
        self.body_images += len(x)

    def on_step(self, m):
        if self.stop_at and m["global_step"] == self.stop_at:
            self.t.stop_flag = True

    def on_epoch_end(self, m):
        self.records.append(m)


def _cfg(ws, run_id, cache: bool, unfreeze_after: int = 0, **kw):
    base = TrainConfig(**{"dataset": "digits", "epochs": 3, "batch_size": 64, "log_every": 1,
                          "seed": 3, **FLIP_ONLY, **kw})
    ft = FinetuneConfig(run_id, freeze="head", unfreeze_after=unfreeze_after)
    cfg = prepare_finetune(ws, base, ft).cfg
    cfg.finetune["feature_cache"] = cache
    return cfg


def _fit(ws, cfg, run_dir, watch=None, resume=False):
    watch = watch or Watch()
    t = build_trainer(ws, cfg, run_dir=run_dir, callbacks=[FineTuning(), Checkpointing(), watch])
    if resume:
        t.restore(load_checkpoint(run_dir / "last.pt", map_location=t.device))
    status = fit(t)
    return t, watch, status


def _assert_same_model(a: dict, b: dict, tol: float = TOL) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=0, atol=tol), key


def _head_keys(model) -> set[str]:
    return {p for g in layer_groups(model) if g.name == "head" for p in g.params}


def test_head_only_on_cached_features_is_the_same_model(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    pix_t, pix, _ = _fit(ws, _cfg(ws, run_id, cache=False), tmp_path / "pixels")
    ft_t, ft, _ = _fit(ws, _cfg(ws, run_id, cache=True), tmp_path / "cached")
    n_train, n_val = len(ft_t.data.train), len(ft_t.data.val)
    # the same model: every epoch's figures, and the checkpoints' weights
    for a, b in zip(pix.records, ft.records, strict=True):
        assert a["val_accuracy"] == b["val_accuracy"]
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
    assert pix.records[-1]["val_accuracy"] > 0.5            # the head really learned
    for name in ("best", "last"):
        _assert_same_model(load_checkpoint(tmp_path / "pixels" / f"{name}.pt")["model"],
                           load_checkpoint(tmp_path / "cached" / f"{name}.pt")["model"])
    # the checkpoint holds the whole model: the head trained, the body as it started
    init = prepare_finetune(ws, TrainConfig(dataset="digits", **FLIP_ONLY),
                            FinetuneConfig(run_id, freeze="head")).init["model"]
    last = load_checkpoint(tmp_path / "cached" / "last.pt")["model"]
    head = _head_keys(ft_t.bare_model)
    assert all(torch.equal(last[k], init[k]) for k in last if k not in head)
    assert all(not torch.equal(last[k], init[k]) for k in head)
    # one body pass per image and flip state (and one probe image), instead of one per step
    assert pix.body_images == 3 * (pix_t.steps_per_epoch * 64 + n_val)
    assert n_train + n_val < ft.body_images <= 2 * n_train + n_val + 1
    # the records say so
    assert [r["feature_cache"] for r in ft.records] == [True] * 3
    assert ft.records[-1]["feature_seconds"] > 0
    assert [r["feature_cache"] for r in pix.records] == [False] * 3
    assert "turned off" in pix.records[0]["feature_cache_off"]
    # the label-review predictions of best.pt: the same rows, from the cached features
    passes = ft.body_images
    write_val_predictions(ft_t, tmp_path / "cached.npz")
    assert ft.body_images == passes                          # no body pass for them
    write_val_predictions(pix_t, tmp_path / "pixels.npz")
    with np.load(tmp_path / "cached.npz") as c, np.load(tmp_path / "pixels.npz") as p:
        assert (c["image_ids"] == p["image_ids"]).all() and len(c["probs"]) == n_val
        assert np.abs(c["probs"] - p["probs"]).max() < TOL


def test_a_stopped_cached_run_resumes_to_the_same_model(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    _, pix, _ = _fit(ws, _cfg(ws, run_id, cache=False), tmp_path / "pixels")
    folder = tmp_path / "cached"
    t, _, status = _fit(ws, _cfg(ws, run_id, cache=True), folder, Watch(stop_at=30))
    assert status == "stopped" and (t.epoch, t.step) == (1, 30 - t.steps_per_epoch)
    t, resumed, status = _fit(ws, _cfg(ws, run_id, cache=True), folder, resume=True)
    assert status == "finished" and resumed.records[-1]["feature_cache"] is True
    assert [r["val_accuracy"] for r in resumed.records] == \
        [r["val_accuracy"] for r in pix.records[1:]]
    _assert_same_model(load_checkpoint(tmp_path / "pixels" / "last.pt")["model"],
                       load_checkpoint(folder / "last.pt")["model"])


def test_gradual_unfreezing_caches_the_frozen_epochs_only(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    kw = dict(epochs=2, unfreeze_after=1)
    pix_t, pix, _ = _fit(ws, _cfg(ws, run_id, cache=False, **kw), tmp_path / "pixels")
    ft_t, ft, _ = _fit(ws, _cfg(ws, run_id, cache=True, **kw), tmp_path / "cached")
    assert [r["feature_cache"] for r in ft.records] == [True, False]
    assert ft_t.head_inputs is None and ft_t.bare_model[0].weight.requires_grad
    assert [r["val_accuracy"] for r in pix.records] == [r["val_accuracy"] for r in ft.records]
    # after unfreezing every group trains, on pixels: the bodies moved, and alike
    init = prepare_finetune(ws, TrainConfig(dataset="digits", **FLIP_ONLY),
                            FinetuneConfig(run_id, freeze="head")).init["model"]
    final = ft_t.bare_model.state_dict()
    assert not torch.equal(final["0.weight"], init["0.weight"])
    _assert_same_model(pix_t.bare_model.state_dict(), final, tol=1e-4)


def test_other_augmentations_train_on_pixels_and_say_why(trained_workspace):
    ws, run_id = trained_workspace
    cfg = _cfg(ws, run_id, cache=True, crop="translate", translate=0.1)
    t = build_trainer(ws, cfg, callbacks=[FineTuning()])
    t.model.train()
    t.callbacks.on_train_epoch_start(t)
    assert t.head_inputs is None and not t.model.training     # a frozen body runs in eval mode
    assert t.record_extras["feature_cache"] is False
    assert "crop translate" in t.record_extras["feature_cache_off"]
    # a translation of 0 changes nothing: it is cached (its draws still line up)
    t = build_trainer(ws, _cfg(ws, run_id, cache=True, crop="translate", translate=0.0),
                      callbacks=[FineTuning()])
    t.callbacks.on_train_epoch_start(t)
    assert t.head_inputs is not None and t.record_extras["feature_cache"] is True


def test_lr_finder_on_a_frozen_body_is_the_same_curve_for_fewer_body_passes(trained_workspace):
    ws, run_id = trained_workspace
    seen = []

    def count(module, args):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 1:   # the stem
            seen[-1] += len(args[0])
    hook = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        curves = []
        for cache in (False, True):
            seen.append(0)
            curves.append(lr_find(ws, _cfg(ws, run_id, cache=cache, flip=False), steps=80))
    finally:
        hook.remove()
    off, on = curves
    assert off["raw_losses"] == pytest.approx(on["raw_losses"], abs=1e-5)
    assert off["suggested_lr"] == pytest.approx(on["suggested_lr"])
    n_train = len(build_trainer(ws, _cfg(ws, run_id, cache=True), callbacks=[FineTuning()])
                  .data.train)
    steps = len(off["lrs"])
    assert steps * 64 > n_train * 1.5          # more than one pass over the images…
    assert seen[0] == steps * 64               # …each step ran the body on pixels
    assert seen[1] <= n_train + 1               # …or each image once (no flips here)
