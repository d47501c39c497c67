"""Train page pieces: the options form, the augmentation preview and the epoch-time estimate.

Widget defaults come from ``core.training.runs.prepare_config`` — the engine's own
automatic choices for the chosen dataset — and widget keys carry the dataset name, so
switching datasets brings that dataset's defaults.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
import torch
from torchvision.utils import make_grid

from core.data.catalog import dataset_info, photo_check
from core.device import available_devices
from core.errors import ImageLabError
from core.labels.history import list_actions
from core.labels.versions import VERSION_HELP, label_version_info, version_numbers
from core.models import ARCH_DESCRIPTIONS
from core.training.config import BALANCE, CROPS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from core.training.data import BatchAugment, load_training_data
from core.training.estimate import estimate_epoch_seconds
from core.training.runs import prepare_config
from dashboard.label_actions import show_error

LRS = [float(f"{m}e{e}") for e in range(-5, 0) for m in (1, 2, 5)] + [1.0]
WEIGHT_DECAYS = [0.0, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1]
BATCHES = [8, 16, 32, 64, 128, 256, 512, 1024]
IMAGENET_SOURCE = "efficientnet_lite0:imagenet"    # the offline ImageNet weights (core.finetune)


def _nearest(options: list, value) -> object:
    return min(options, key=lambda o: abs(math.log(o + 1e-12) - math.log(value + 1e-12)))


def options_form(ws, dataset: str) -> TrainConfig | None:
    """All the engine's options as widgets; returns the config to start (None on bad data)."""
    info = dataset_info(ws, dataset)
    k = f"train_{dataset}_"
    version = label_version_picker(ws, dataset, info.label_version, k)
    try:
        auto = prepare_config(ws, TrainConfig(dataset=dataset, label_version=version))
    except ImageLabError as exc:
        show_error(exc)
        return None
    st.caption(f"{info.num_labelled:,} labelled images now, {len(info.classes)} classes")
    archs = list(ARCH_DESCRIPTIONS)
    arch = st.selectbox("Model", archs, index=archs.index(auto.arch), key=k + "arch",
                        format_func=lambda a: f"{a} — {ARCH_DESCRIPTIONS[a]}")
    device = st.selectbox("Device", ["auto", *available_devices()], key=k + "device",
                          help="auto picks CUDA, then Apple MPS, then the CPU")
    c1, c2 = st.columns(2)
    epochs = c1.slider("Epochs", 1, 100, auto.epochs, key=k + "epochs")
    batch = c2.select_slider("Batch size", BATCHES, _nearest(BATCHES, auto.batch_size),
                             key=k + "batch")
    lr = c1.select_slider("Learning rate", LRS, _nearest(LRS, auto.lr), key=k + "lr",
                          format_func=lambda v: f"{v:g}", help="peak rate; log scale")
    wd = c2.select_slider("Weight decay", WEIGHT_DECAYS, _nearest(WEIGHT_DECAYS, auto.weight_decay + 1e-9),
                          key=k + "wd", format_func=lambda v: f"{v:g}")
    size = c1.slider("Image size (px)", 8, 224, auto.image_size, step=4 if auto.image_size % 4 == 0
                     else 1, key=k + "size")
    optimizer = c2.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(auto.optimizer),
                             key=k + "opt")
    with st.expander("Augmentation and class balance"):
        a1, a2 = st.columns(2)
        crops = [c for c in CROPS if c != "auto"]
        crop = a1.selectbox("Crop", crops, crops.index(auto.crop), key=k + "crop",
                            help="random translate, or random-resized crop")
        flip = a2.toggle("Horizontal flip", auto.flip, key=k + "flip")
        rotation = a1.slider("Rotation (°)", 0, 45, int(auto.rotation), key=k + "rot")
        jitter = a2.slider("Colour jitter", 0.0, 0.5, float(auto.color_jitter), 0.05, key=k + "jit")
        balances = [b for b in BALANCE if b != "auto"]
        balance = st.radio("Class imbalance", balances, balances.index(auto.balance),
                           horizontal=True, key=k + "bal")
    with st.expander("Schedule, regularisation and speed"):
        b1, b2 = st.columns(2)
        schedule = b1.selectbox("Schedule", SCHEDULES, SCHEDULES.index(auto.schedule), key=k + "sch")
        warmup = b2.number_input("Warm-up epochs", 0.0, 50.0, float(auto.warmup_epochs), 0.5,
                                 key=k + "warm")
        smoothing = b1.slider("Label smoothing", 0.0, 0.3, auto.label_smoothing, 0.05, key=k + "ls")
        clip = b2.number_input("Gradient clipping (0 = off)", 0.0, 100.0, 0.0, 0.5, key=k + "clip")
        early = b1.number_input("Early stopping patience (0 = off)", 0, 100, 0, key=k + "early")
        precision = b2.selectbox("Precision", PRECISIONS, PRECISIONS.index(auto.precision),
                                 key=k + "prec")
        seed = b1.number_input("Seed", 0, 2**31 - 1, 0, key=k + "seed")
        deterministic = b2.toggle("Deterministic", False, key=k + "det",
                                  help="bitwise-reproducible on the CPU; a little slower")
    return TrainConfig(dataset=dataset, label_version=version, arch=arch, device=device, epochs=epochs, batch_size=batch,
                       lr=lr, weight_decay=wd, image_size=size, optimizer=optimizer, crop=crop,
                       flip=flip, rotation=float(rotation), color_jitter=jitter, balance=balance,
                       schedule=schedule, warmup_epochs=warmup, label_smoothing=smoothing,
                       grad_clip=clip, early_stopping=int(early), precision=precision,
                       seed=int(seed), deterministic=deterministic)


def label_version_picker(ws, dataset: str, current: int, key: str) -> int | None:
    """The labels to train on: the current ones, or those of an earlier labelling action
    (named by their user-facing number, ``v12``; the value is the internal version)."""
    past = [a for a in list_actions(ws, dataset, limit=30)
            if a.label_version is not None and a.label_version < current]
    numbers = version_numbers(ws, dataset, [a.label_version for a in past])
    labels = {None: f"current ({label_version_info(ws, dataset, current).text})"}
    for a in past:
        labels.setdefault(a.label_version,
                          f"v{numbers[a.label_version]} — after {a.kind}: {a.description}"[:90])
    return st.selectbox("Label version", list(labels), key=key + "version",
                        format_func=lambda v: labels[v], help=VERSION_HELP)


def photo_hint(ws, dataset: str) -> None:
    """For a dataset that looks like photos (``core.data.catalog.photo_check``): say that
    fine-tuning from ImageNet weights is the better start, and open the Fine-tune page on
    that source and this dataset in one click (the page reads ``?source=``)."""
    check = photo_check(ws, dataset)
    if not check.looks_like_photos:
        return
    st.info(f"**{dataset}** looks like photos (colour, median side {check.median_side} px). "
            "Fine-tuning from ImageNet weights is the better start: a few hundred photos are "
            "enough to adapt a network that already knows what photos show, and far from "
            "enough to learn that from scratch.", icon=":material/photo_camera:")
    if st.button("Fine-tune from ImageNet weights (EfficientNet-Lite0)", key="train_photo_ft",
                 icon=":material/auto_awesome:"):
        st.session_state.update(ft_dataset=dataset, ft_source_request=IMAGENET_SOURCE)
        st.switch_page("pages/4_Fine-tune.py", query_params={"source": IMAGENET_SOURCE})


def augmentation_preview(ws, cfg: TrainConfig, count: int = 16) -> None:
    """A grid of augmented training samples, drawn with the engine's own augmentation."""
    try:
        cfg = prepare_config(ws, cfg)
        data = load_training_data(ws, cfg.dataset, cfg.image_size, torch.device("cpu"))
    except ImageLabError as exc:
        st.warning(str(exc))
        return
    seed = st.session_state.get("train_preview_seed", 0)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train), generator=g)[:count]
    raw = data.train.batch(idx, torch.device("cpu"))
    aug = BatchAugment(TrainConfig(**{**cfg.to_dict(), "normalize": False}), data.mean, data.std,
                       data.channels)
    views = aug(raw, g)
    grid = make_grid(views, nrow=8, padding=2, pad_value=1.0)
    img = (grid.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
    scale = max(1, 96 // cfg.image_size)
    img = np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8))
    st.image(img, caption=f"{count} augmented training images at {cfg.image_size} px "
                          f"(crop {cfg.crop}, flip {'on' if cfg.flip else 'off'}, rotation "
                          f"{cfg.rotation:g}°, jitter {cfg.color_jitter:g})")
    if st.button("New samples", key="train_preview_again"):
        st.session_state["train_preview_seed"] = seed + 1
        st.rerun()


def epoch_estimate(ws, cfg: TrainConfig) -> None:
    """Time a few real steps and show seconds per epoch and for the whole run."""
    if not st.button("Estimate time per epoch", key="train_estimate"):
        return
    with st.spinner("Timing a few training steps…"):
        try:
            est = estimate_epoch_seconds(ws, prepare_config(ws, cfg))
        except ImageLabError as exc:
            show_error(exc)
            return
    total = est["seconds_per_epoch"] * cfg.epochs
    st.info(f"About **{est['seconds_per_epoch']:.1f} s per epoch** "
            f"({est['steps_per_epoch']} steps at {est['images_per_sec']:,.0f} images/s) — "
            f"about {total / 60:.1f} min for {cfg.epochs} epochs.")
