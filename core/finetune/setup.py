"""Fine-tuning runs: ordinary runs (kind ``finetune``) that start from pretrained weights.

``FinetuneConfig`` says where the weights come from and what trains: a freeze preset or
group list, gradual unfreezing after K epochs, per-group learning-rate multipliers.
``prepare_finetune`` resolves it against the target dataset (architecture and image size
follow the source; the weights are mapped onto the model by name or by order, see
``weights_map``; the head is rebuilt for the new classes) and stores the result in
``TrainConfig.finetune``. ImageNet weights train at their own resolution, or at the size a
CPU can afford, measured (``resolution``); the user's image size always wins.
``create_finetune_run`` also writes ``runs/<id>/init.pt`` (the adapted starting weights) so a run never depends on its source again, and records the
source (``parent_run_id`` for a workspace run). Training applies the section through the
``FineTuning`` callback (``core.finetune.callback``): it loads ``init.pt``, builds
per-group optimizer groups, and freezes groups at every epoch start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.device import pick_device
from core.errors import ImageLabError
from core.finetune.groups import HEAD, layer_groups, resolve_freeze, resolve_lr_mults
from core.finetune.heads import adapt_state
from core.finetune.resolution import choose_image_size, untimed_rule
from core.finetune.sources import IMAGENET, SourceWeights, resolve_source
from core.finetune.weights_map import map_state
from core.models import canonical_arch, create_model
from core.store.run_paths import RunPaths
from core.store.workspace import Workspace, atomic_write_text
from core.training import jobs
from core.training.checkpoint import save_checkpoint
from core.training.config import TrainConfig
from core.training.data import dataset_facts
from core.training.runs import Run, create_run, get_run, prepare_config

# The learning rate on auto, as a fraction of the from-scratch default. Gentler bodies come
# from discriminative multipliers instead: on the few-shot digits bench 0.3 under-trained the
# new head (k=2: +9.9 points over scratch) where 1.0 gave +10.9 (k=1: +16.1 vs +18.0).
FINETUNE_LR_SCALE = 1.0


# Epochs of a linear probe (the body frozen throughout) when the user leaves them open: the
# head converges on fixed features within a few epochs (cats-dogs, 5 splits: 97.8% after
# 5 epochs, 97.3% after 10, 97.5% after 40). With the feature cache the first two epochs
# hold the body passes and each later one costs ~0.1 s on 2 cores, so 20 epochs cost about
# what 10 do, and leave the head room on harder data; without the cache (refused, or
# turned off) every epoch is a body pass per image.
PROBE_EPOCHS = 20


@dataclass
class FinetuneConfig:
    """What a fine-tuning run starts from and what trains (the user's options)."""

    source: str                        # run id | ARCH:imagenet | path to .pt/.pth/.safetensors
    freeze: str | list = "auto"        # auto | none | head | last:N | group names
    unfreeze_after: int = 0            # epochs before every group trains; 0 = never
    lr_mults: str | dict = ""          # {"stem": 0.1} | "stem=0.1,…" | "discriminative:0.1"
    feature_cache: bool = True         # a frozen body's features computed once per image

    def to_dict(self) -> dict:
        """The options as a plain dict (JSON-ready, as stored with the run)."""
        return asdict(self)


@dataclass
class FinetuneSetup:
    """``prepare_finetune``'s result: the resolved config and the adapted start."""

    cfg: TrainConfig
    source: SourceWeights
    init: dict                         # {"model": state dict, "mean", "std"}
    groups: list                       # LayerGroup
    head: dict                         # HeadReport.to_dict()


def prepare_finetune(ws: Workspace, cfg: TrainConfig, ft: FinetuneConfig) -> FinetuneSetup:
    """Resolve the source and the options; build the adapted starting weights."""
    if ft.unfreeze_after < 0:
        raise ImageLabError("unfreeze-after must be 0 (never) or a number of epochs")
    cfg = TrainConfig(**cfg.to_dict())
    user = TrainConfig(**cfg.to_dict())      # what the user left open, before resolving
    src = resolve_source(ws, ft.source, arch=None if cfg.arch in ("auto", None) else cfg.arch)
    if src.arch is None:
        raise ImageLabError(f"{src.label} does not say which architecture it is: choose it "
                            "(--arch, e.g. compact or resnet18)")
    if cfg.arch not in ("auto", None) and canonical_arch(cfg.arch) != src.arch:
        raise ImageLabError(f"{src.label} is a {src.arch}; fine-tuning keeps the source's "
                            f"architecture (asked for {cfg.arch})")
    cfg.arch = src.arch
    facts = dataset_facts(ws, cfg.dataset, cfg.label_version)
    resolution = _resolution(cfg, ft, src, facts)
    scratch_lr = cfg.lr is None
    cfg.finetune = {"source": ft.source}      # marks the config (resolve keeps it)
    cfg = prepare_config(ws, cfg)
    if scratch_lr:
        cfg.lr = round(cfg.lr * FINETUNE_LR_SCALE, 6)
    model = create_model(cfg.arch, len(facts.class_names), facts.channels, cfg.image_size)
    mapped, mapping = map_state(model, src.state, label=src.label)
    if src.mapping is None:            # a source that mapped its own file keeps that report
        src.mapping = mapping.to_dict()
    state, head = adapt_state(model, mapped, src.class_names, facts.class_names,
                              label=src.label)
    groups = layer_groups(model)
    names = [g.name for g in groups]
    frozen = resolve_freeze(auto_freeze(ft.freeze, src), names)
    mults = resolve_lr_mults(ft.lr_mults, names)
    augmentation = _frozen_body_augmentation(cfg, user, names, frozen, ft.unfreeze_after)
    mean = std = None
    if src.mean and src.std:
        mean, std = _for_channels(src.mean, facts.channels), _for_channels(src.std, facts.channels)
    cfg.finetune = {"source": ft.source, "freeze": auto_freeze(ft.freeze, src), "unfreeze_after": ft.unfreeze_after,
                    "lr_mults": mults, "frozen": frozen, "groups": names,
                    "origin": src.record(), "head": head.to_dict(), "mean": mean, "std": std,
                    "feature_cache": bool(ft.feature_cache), "augmentation": augmentation,
                    "resolution": resolution or untimed_rule(
                        cfg.image_size, "the dataset's default size (the source names none)")}
    return FinetuneSetup(cfg, src, {"model": state, "mean": mean, "std": std}, groups, head.to_dict())


def _resolution(cfg: TrainConfig, ft: FinetuneConfig, src: SourceWeights, facts) -> dict | None:
    """Set ``cfg.image_size`` from the source where the user left it open; the rule applied
    (None: the dataset's defaults decide)."""
    if cfg.image_size is not None:
        return untimed_rule(cfg.image_size, "chosen by the user")
    if not src.image_size:
        return None
    if src.kind != IMAGENET:
        cfg.image_size = int(src.image_size)
        return untimed_rule(cfg.image_size, "the source's size")
    probe = create_model(cfg.arch, len(facts.class_names), facts.channels, int(src.image_size))
    groups = layer_groups(probe)
    frozen = resolve_freeze(auto_freeze(ft.freeze, src), [g.name for g in groups])
    rule = choose_image_size(probe, groups, frozen, ft.unfreeze_after, int(src.image_size),
                             device_type=pick_device(cfg.device).split(":")[0],
                             num_train=facts.num_train, num_val=facts.num_val)
    cfg.image_size = rule["image_size"]
    return rule


def auto_freeze(freeze: str | list, src: SourceWeights) -> str | list:
    """``auto`` made concrete: ``head`` (a linear probe) from ImageNet weights, ``none``
    (train everything) from a run or a file. ImageNet features transfer to photos as they
    are, and on a few hundred photos training the whole body does worse (see DECISIONS);
    a workspace run is usually the same kind of data, where every layer may adapt."""
    if freeze == "auto":
        return "head" if src.kind == IMAGENET else "none"
    return freeze


def _frozen_body_augmentation(cfg: TrainConfig, user: TrainConfig, names: list[str],
                              frozen: list[str], unfreeze_after: int) -> str:
    """With the body frozen from the start, the augmentation the user left on auto is
    flips only, so the feature cache applies (one body pass per image and flip state, not
    one per step), and open epochs are at most ``PROBE_EPOCHS`` when it stays frozen;
    returns the augmentation chosen, in words ('' when nothing changed)."""
    if HEAD not in names or set(frozen) != set(names) - {HEAD}:
        return ""
    changed = []
    if user.crop == "auto" and cfg.crop != "none":
        cfg.crop = "none"
        changed.append("no crop")
    if user.rotation is None and cfg.rotation:
        cfg.rotation = 0.0
        changed.append("no rotation")
    if user.color_jitter is None and cfg.color_jitter:
        cfg.color_jitter = 0.0
        changed.append("no colour jitter")
    if user.epochs is None and not unfreeze_after and cfg.epochs > PROBE_EPOCHS:
        cfg.epochs = PROBE_EPOCHS
    if not changed:
        return ""
    return ("flips only (" + ", ".join(changed) + "): the body is frozen, so its features "
            "are computed once per image and reused")


def _for_channels(values: list[float], channels: int) -> list[float]:
    return [sum(values) / len(values)] * channels if channels != len(values) else list(values)


def create_finetune_run(ws: Workspace, cfg: TrainConfig, ft: FinetuneConfig, *,
                        status: str = "queued", name: str = "") -> Run:
    """The run's folder and row, with ``init.pt`` and its source recorded."""
    prep = prepare_finetune(ws, cfg, ft)
    run = create_run(ws, prep.cfg, status=status, name=name)
    save_checkpoint(prep.init, run.paths.init)
    atomic_write_text(run.paths.finetune, json.dumps(
        {"source": prep.source.record(), "head": prep.head,
         "groups": [{"name": g.name, "params": g.num_params} for g in prep.groups],
         "frozen": prep.cfg.finetune["frozen"], "lr_mults": prep.cfg.finetune["lr_mults"],
         "unfreeze_after": ft.unfreeze_after,
         "resolution": prep.cfg.finetune["resolution"]}, indent=2))
    with ws.write() as conn:
        conn.execute("UPDATE runs SET kind='finetune', parent_run_id=? WHERE id=?",
                     (prep.source.parent_run_id, run.id))
    return get_run(ws, run.id)


def start_finetune(ws: Workspace, cfg: TrainConfig, ft: FinetuneConfig, *, name: str = "") -> Run:
    """Create a fine-tuning run and queue it as a background job."""
    return jobs.queue_run(ws, create_finetune_run(ws, cfg, ft, name=name).id)


def read_finetune_info(folder: Path) -> dict:
    """The run folder's ``finetune.json`` (source, head report, groups), or {} if absent."""
    try:
        return json.loads(RunPaths(folder).finetune.read_text())
    except (OSError, ValueError):
        return {}
