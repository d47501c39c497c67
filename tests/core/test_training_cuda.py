"""The engine on a CUDA GPU (skipped visibly on CPU-only machines)."""

import pytest
import torch

from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run

pytestmark = [pytest.mark.requires_cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_train_and_resume_on_cuda(sample_workspace, precision):
    cfg = TrainConfig(dataset="digits", image_size=16, epochs=3, device="cuda",
                      precision=precision)
    run = create_run(sample_workspace, cfg)
    assert run.config["device"] == "cuda"
    summary = train_run(sample_workspace, run.id)
    assert summary["status"] == "finished" and summary["metrics"]["val_accuracy"] > 0.5
