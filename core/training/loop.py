"""The step and the loops: one batch path and one optimisation step for every user.

``prepare_batch`` turns positions of a split into an augmented (or, for evaluation, only
normalised) float batch on the device, channels_last when configured; ``train_step`` is
one optimisation step. Training, evaluation, the label-review predictions, the LR finder
and the fine-tuning probe all go through them.

Speed: the data sits on the device as uint8, batches are augmented there, the model runs
under autocast (bf16 where the hardware has it, fp16 with a GradScaler otherwise), and
``train_one_epoch`` reads a number back from the device only at logging steps.
"""

from __future__ import annotations

import contextlib
import math
import os
import time

import torch
import torch.nn.functional as F

from core.errors import ImageLabError
from core.training.config import TrainConfig
from core.training.data import Split, epoch_order
from core.training.optim import lr_factor, set_lr
from core.training.trainer import Trainer

# A mid-epoch last.pt at most this often, so a killed trainer loses at most this much work.
CHECKPOINT_EVERY_S = float(os.environ.get("IMAGELAB_CHECKPOINT_EVERY_S", "60"))


def autocast_for(cfg: TrainConfig, device: torch.device):
    """(autocast context factory, GradScaler or None) for the configured precision."""
    if cfg.precision == "fp32" or device.type == "mps" and cfg.precision == "bf16":
        return (lambda: contextlib.nullcontext()), None
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def prepare_batch(t: Trainer, split: Split, idx: torch.Tensor, *,
                  train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) at positions ``idx`` of ``split`` for ``net(t)``: images (augmented
    with the trainer's generator when ``train``, else only normalised; channels_last when
    configured), or the head's inputs while ``t.head_inputs`` is set."""
    if t.head_inputs is not None:
        return (t.head_inputs.batch(t, split, idx, train=train),
                split.labels[idx.to(split.labels.device)])
    return pixel_batch(t, split, idx, train=train)


def pixel_batch(t: Trainer, split: Split, idx: torch.Tensor, *,
                train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) at positions ``idx`` of ``split`` for the whole model (see
    ``prepare_batch``)."""
    pixels = split.batch(idx, t.device)
    x = t.augment(pixels, t.aug_rng) if train else t.augment(pixels, None, train=False)
    if t.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, split.labels[idx.to(split.labels.device)]


def net(t: Trainer) -> torch.nn.Module:
    """What a step runs: the model, or the head alone while ``t.head_inputs`` is set."""
    return t.model if t.head_inputs is None else t.head_inputs.module


def train_step(t: Trainer, x: torch.Tensor, y: torch.Tensor,
               lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step at peak rate ``lr`` (scaled per group by ``lr_mult``): forward
    under autocast, backward (scaled for fp16), gradient clipping when configured, step.
    Returns the (loss, logits), detached and still on the device."""
    set_lr(t.optimizer, lr)
    with t.autocast():
        logits = net(t)(x)
        loss = t.criterion(logits.float(), y)
    t.optimizer.zero_grad(set_to_none=True)
    if t.scaler is not None:
        t.scaler.scale(loss).backward()
        t.scaler.unscale_(t.optimizer)
    else:
        loss.backward()
    if t.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.cfg.grad_clip)
    if t.scaler is not None:
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        t.optimizer.step()
    return loss.detach(), logits.detach()


def train_one_epoch(t: Trainer) -> bool:
    """Train from step ``t.step`` to the end of epoch ``t.epoch``; False when stopped."""
    cfg, data = t.cfg, t.data
    t.model.train()
    t.callbacks.on_train_epoch_start(t)   # e.g. fine-tuning's frozen groups
    order = epoch_order(len(data.train), t.epoch, cfg.seed, t.sampler_weights)
    log_every = cfg.log_every or max(1, t.steps_per_epoch // 10)
    a = t.accum or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    loss_sum = torch.zeros((), device=t.device)
    correct = torch.zeros((), device=t.device, dtype=torch.int64)
    seen, t0 = 0, time.perf_counter()
    while t.step < t.steps_per_epoch:
        if t.stop_requested():
            _flush(t, a, loss_sum, correct, seen, t0)
            return False
        start = t.step * t.global_batch + t.dist.rank * cfg.batch_size
        idx = order[start:start + cfg.batch_size]
        x, y = prepare_batch(t, data.train, idx, train=True)
        lr = cfg.lr * lr_factor(cfg, t.epoch * t.steps_per_epoch + t.step, t.steps_per_epoch)
        loss, logits = train_step(t, x, y, lr)
        loss_sum += loss * len(idx)
        correct += (logits.argmax(1) == y).sum()
        seen += len(idx)
        t.step += 1
        if t.step % log_every == 0 or t.step == t.steps_per_epoch:
            step_loss = float(loss)
            if not math.isfinite(step_loss):
                raise ImageLabError(
                    f"the loss became {step_loss} at epoch {t.epoch + 1}, step {t.step}: "
                    f"training stopped. Try a lower learning rate (it was {lr:.3g}), gradient "
                    "clipping, or fp32 precision")
            elapsed = a["seconds"] + time.perf_counter() - t0
            ips = (a["seen"] + seen) * t.dist.world / max(elapsed, 1e-9)
            t.callbacks.on_step(_step_record(t, step_loss, lr, ips))
            if (t.step < t.steps_per_epoch
                    and time.monotonic() - t.last_save >= CHECKPOINT_EVERY_S):
                _flush(t, a, loss_sum, correct, seen, t0)   # the sums so far go into the checkpoint
                t.save("last")
                a = t.accum
                loss_sum.zero_()
                correct.zero_()
                seen, t0 = 0, time.perf_counter()
    _flush(t, a, loss_sum, correct, seen, t0)
    return True


def _flush(t: Trainer, a: dict, loss_sum, correct, seen: int, t0: float) -> None:
    """Fold this session's sums into ``t.accum`` (they survive a stop in the checkpoint)."""
    dt = time.perf_counter() - t0
    t.accum = {"loss": a["loss"] + float(loss_sum), "correct": a["correct"] + int(correct),
               "seen": a["seen"] + seen, "seconds": a["seconds"] + dt}
    t.seconds += dt


def _step_record(t: Trainer, loss: float, lr: float, ips: float) -> dict:
    done = t.epoch * t.steps_per_epoch + t.step
    total = t.cfg.epochs * t.steps_per_epoch
    eta = (total - done) * t.global_batch / max(ips, 1e-9)
    return {"epoch": t.epoch, "step": t.step, "global_step": done, "loss": loss, "lr": lr,
            "images_per_sec": ips, "eta_s": eta, "progress": done / total, "time": time.time()}


@torch.inference_mode()
def evaluate(t: Trainer) -> tuple[float, float]:
    """(loss, accuracy) on the validation split, summed over every rank's share.

    In float32 even when training runs under bf16/fp16 autocast: the accuracy recorded here
    picks ``best.pt`` and is shown on Train and in the runs table, and Evaluate, Demo and an
    exported model all run the checkpoint in float32, so the figure must be theirs (under
    bf16 one near-tied image in 269 flipped and the two pages disagreed by 0.4 pt). The
    validation pass is forward-only and small, so float32 costs little. A frozen body's
    cached validation features (``t.head_inputs``) are computed in float32 too."""
    split = t.data.val
    t.model.eval()
    loss_sum = torch.zeros((), device=t.device, dtype=torch.float64)
    correct = torch.zeros((), device=t.device, dtype=torch.float64)
    positions = torch.arange(t.dist.rank, len(split), t.dist.world)
    bs = max(t.cfg.batch_size, 256)
    for k in range(0, len(positions), bs):
        x, y = prepare_batch(t, split, positions[k:k + bs], train=False)
        logits = net(t)(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum().double()
    totals = t.dist.all_reduce_sum(torch.stack([loss_sum, correct]))
    return float(totals[0]) / len(split), float(totals[1]) / len(split)


@torch.inference_mode()
def predict_probs(t: Trainer, model: torch.nn.Module, split: Split,
                  batch: int = 512) -> torch.Tensor:
    """Softmax rows of ``model`` for every image of ``split``, in order, on the CPU; in
    float32, as ``evaluate`` runs."""
    model.eval()
    probs = []
    for k in range(0, len(split), batch):
        x, _ = pixel_batch(t, split, torch.arange(k, min(k + batch, len(split))), train=False)
        probs.append(torch.softmax(model(x), 1).cpu())
    return torch.cat(probs)


@torch.inference_mode()
def cached_head_probs(t: Trainer, state: dict, split: Split,
                      batch: int = 512) -> torch.Tensor | None:
    """Softmax rows, on the CPU, of the model with weights ``state`` for every image of
    ``split`` from the head inputs ``t.head_inputs`` holds (a frozen body's cached
    features): the same rows as ``predict_probs`` without a body pass. None when no cache
    is set or ``state``'s body is not the body the features came from."""
    cache = t.head_inputs
    if cache is None:
        return None
    model = t.bare_model
    name = next(n for n, m in model.named_modules() if m is cache.module)
    current = model.state_dict()
    if state.keys() != current.keys() or not all(
            torch.equal(v, current[k].to(v.device)) for k, v in state.items()
            if not k.startswith(name + ".")):
        return None
    head = {k[len(name) + 1:]: v.to(t.device) for k, v in state.items() if k.startswith(name + ".")}
    model.eval()
    probs = []
    for k in range(0, len(split), batch):
        feats = cache.batch(t, split, torch.arange(k, min(k + batch, len(split))), train=False)
        logits = torch.func.functional_call(cache.module, head, (feats,))
        probs.append(torch.softmax(logits, 1).cpu())
    return torch.cat(probs)


def end_epoch(t: Trainer) -> dict:
    """Validate, update the best so far, advance to the next epoch, then call the callbacks
    (``on_validation_end`` on every rank: checkpoints, early stopping; ``on_epoch_end`` on
    rank 0: reports). Returns the epoch record."""
    val_loss, val_acc = evaluate(t)
    if not math.isfinite(val_loss):
        raise ImageLabError(f"the validation loss became {val_loss} at epoch {t.epoch + 1}: "
                            "training stopped. Try a lower learning rate or gradient clipping")
    a = t.accum
    world = t.dist.world
    seen = a["seen"] * world
    train_loss = a["loss"] / max(1, a["seen"])
    train_acc = a["correct"] / max(1, a["seen"])
    if t.dist.enabled:
        sums = t.dist.all_reduce_sum(torch.tensor([a["loss"], float(a["correct"])],
                                                  dtype=torch.float64, device=t.device))
        train_loss, train_acc = float(sums[0]) / seen, float(sums[1]) / seen
    improved = val_acc > t.best_val_accuracy
    if improved:
        t.best_val_accuracy, t.best_epoch, t.epochs_since_best = val_acc, t.epoch, 0
    else:
        t.epochs_since_best += 1
    ips = seen / max(a["seconds"], 1e-9)
    done_epochs = t.epoch + 1
    record = {"epoch": t.epoch, "epochs": t.cfg.epochs, "train_loss": train_loss,
              "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc,
              "lr": t.optimizer.param_groups[0]["lr"], "images_per_sec": ips,
              "epoch_seconds": a["seconds"], "seconds": t.seconds,
              "best_val_accuracy": t.best_val_accuracy, "best_epoch": t.best_epoch,
              "progress": done_epochs / t.cfg.epochs,
              "eta_s": (t.cfg.epochs - done_epochs) * t.seconds / done_epochs, "time": time.time(),
              **t.record_extras}
    t.history.append({k: record[k] for k in ("epoch", "train_loss", "train_accuracy", "val_loss",
                                              "val_accuracy", "images_per_sec", "seconds")})
    t.epoch, t.step, t.accum = t.epoch + 1, 0, {}
    t.callbacks.on_validation_end(t, record)
    if t.dist.is_main:
        t.callbacks.on_epoch_end(record)
    return record
