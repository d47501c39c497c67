"""Optimizer and learning-rate schedule: what ``build_trainer`` sets up before the first step.

``build_optimizer`` puts weight decay on weights only; ``optimizer_for`` is the configured
optimizer over any param groups (fine-tuning passes per-layer-group ones). ``lr_factor`` is
the schedule as a multiplier of the peak rate at a global step, and ``set_lr`` applies a
rate, scaled per group by its ``lr_mult``.
"""

from __future__ import annotations

import math

import torch

from core.training.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``; no weight decay on biases and BatchNorm."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return optimizer_for(groups, cfg)


def optimizer_for(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer (sgd, nesterov, adam, adamw) over the given param groups."""
    if cfg.optimizer in ("sgd", "nesterov"):
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.optimizer == "nesterov")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The schedule: a multiplier of the peak learning rate at global ``step``."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round((cfg.warmup_epochs or 0) * steps_per_epoch))
    if cfg.schedule == "onecycle":
        warm = max(1, warm)
        if step < warm:
            return 0.04 + 0.96 * step / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * p))
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        p = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * p))
    if cfg.schedule == "step":
        every = cfg.step_epochs or max(1, cfg.epochs // 3)
        return cfg.step_gamma ** (step // (every * steps_per_epoch))
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate; a group's ``lr_mult`` (fine-tuning's per-layer rates) scales it."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
