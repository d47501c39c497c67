"""Engine options that change behaviour: schedules, early stopping, class balance."""

from __future__ import annotations

import pytest
import torch

from core.training.config import TrainConfig
from core.training.data import class_weights, epoch_order, sample_weights
from core.training.optim import lr_factor
from core.training.run import train_run
from core.training.runs import create_run, get_run


def test_schedules_have_their_shapes():
    spe = 10
    cfg = TrainConfig(epochs=10, schedule="onecycle", warmup_epochs=2)
    curve = [lr_factor(cfg, s, spe) for s in range(100)]
    assert curve[0] == pytest.approx(0.04) and max(curve) == pytest.approx(1.0)
    assert curve.index(max(curve)) == 20 and curve[-1] < 0.01
    cos = [lr_factor(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1), s, spe)
           for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0) and cos[-1] < 0.01
    step = [lr_factor(TrainConfig(epochs=9, schedule="step", warmup_epochs=0, step_gamma=0.5),
                      s, spe) for s in range(90)]
    assert step[0] == 1.0 and step[30] == 0.5 and step[89] == 0.25
    const = [lr_factor(TrainConfig(epochs=3, schedule="constant", warmup_epochs=1), s, spe)
             for s in range(30)]
    assert const[4] < 1.0 and set(const[10:]) == {1.0}


def test_weighted_sampler_and_class_weights_counter_imbalance():
    labels = torch.tensor([0] * 900 + [1] * 100)
    drawn = labels[epoch_order(1000, 0, 0, sample_weights(labels, 2))]
    share = (drawn == 1).float().mean().item()
    assert 0.4 < share < 0.6                                   # 10% of the data, ~50% of draws
    assert torch.equal(epoch_order(1000, 3, 0), epoch_order(1000, 3, 0))   # seeded per epoch
    assert not torch.equal(epoch_order(1000, 3, 0), epoch_order(1000, 4, 0))
    w = class_weights([900, 100])
    assert w[1] / w[0] == pytest.approx(9.0) and w.mean().item() == pytest.approx(1.0)


def test_early_stopping_ends_a_run_that_stopped_improving(sample_workspace):
    # a learning rate so small that validation accuracy cannot improve after epoch 1
    cfg = TrainConfig(dataset="digits", image_size=8, epochs=10, batch_size=64, threads=1,
                      lr=1e-9, schedule="constant", warmup_epochs=0, early_stopping=2,
                      balance="sampler", arch="keras-mnist")   # no BatchNorm: nothing moves
    run = create_run(sample_workspace, cfg)
    summary = train_run(sample_workspace, run.id)
    assert summary["status"] == "finished" and summary["metrics"]["epochs"] == 3
    assert "early stopping" in get_run(sample_workspace, run.id).message
