"""Where pretrained weights come from: a run of the workspace, ImageNet weights, or a
weights file (.pt/.pth/.bin state dict, our checkpoint dict, or .safetensors).

``resolve_source(ws, spec)`` returns a ``SourceWeights``: a state dict plus what is known
about it (architecture, class names, image size, normalisation, licence and origin).
ImageNet weights (``ARCH:imagenet``) are ``core.finetune.imagenet``'s: the offline
EfficientNet-Lite0, torchvision's, or timm's hub; ``offline_imagenet_sources()`` lists
those that need no network. Every ``torch.load`` passes ``weights_only=True``; a file that
is not a checkpoint is refused with a clear message, never executed. A file of another
naming scheme is mapped onto the model later, by ``weights_map`` (by name, else by order).
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.data.files import check_regular_file
from core.errors import ImageLabError, NotFoundError
from core.finetune.imagenet import (
    IMAGENET,
    OFFLINE_ENV,
    hub_checkpoint_dir,
    imagenet_file,
    imagenet_weights,
    is_imagenet_spec,
    offline_imagenet_sources,
)
from core.finetune.weights_files import SourceWeights, load_safetensors, load_torch_file
from core.models import canonical_arch
from core.models.timm_models import pretrained_config, timm_name
from core.store.run_paths import run_paths
from core.store.workspace import Workspace
from core.training.checkpoint import load_checkpoint

__all__ = ["IMAGENET", "OFFLINE_ENV", "SourceWeights", "file_weights", "hub_checkpoint_dir",
           "imagenet_file", "imagenet_weights", "is_imagenet_spec", "offline_imagenet_sources",
           "resolve_source", "run_weights"]


def resolve_source(ws: Workspace, spec: str, *, arch: str | None = None) -> SourceWeights:
    """A run id, ``ARCH:imagenet``, or a path to a weights file."""
    spec = (spec or "").strip()
    if not spec:
        raise ImageLabError("choose where to start from: a run id, ARCH:imagenet, or a file")
    imagenet_arch = is_imagenet_spec(spec)
    if imagenet_arch:
        return imagenet_weights(imagenet_arch)
    if _run_exists(ws, spec):
        return run_weights(ws, spec)
    path = Path(spec).expanduser()
    if path.exists() or path.suffix.lower() in (".pt", ".pth", ".safetensors", ".bin"):
        return file_weights(path, arch=arch)
    raise NotFoundError(f"{spec!r} is neither a run of this workspace, ARCH:imagenet (e.g. "
                        "efficientnet_lite0:imagenet), nor an existing weights file")


def _run_exists(ws: Workspace, run_id: str) -> bool:
    with ws.db() as conn:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


def run_weights(ws: Workspace, run_id: str) -> SourceWeights:
    """A run's weights (``best.pt``, else ``last.pt``), with its classes and image size.

    Raises ``ImageLabError`` when the run has no checkpoint yet or the file is not an ImageLab
    checkpoint."""
    paths = run_paths(ws, run_id)
    path = next((p for p in (paths.best, paths.last) if p.exists()), None)
    if path is None:
        raise ImageLabError(f"run {run_id} has no checkpoint yet (best.pt or last.pt); "
                            "fine-tune from a run that trained at least one epoch")
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ImageLabError(f"{path} is not an ImageLab checkpoint")
    cfg = ckpt.get("config") or {}
    with ws.db() as conn:
        row = conn.execute("SELECT d.name FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
                           "WHERE r.id = ?", (run_id,)).fetchone()
    dataset = row[0] if row and row[0] else cfg.get("dataset", "?")
    return SourceWeights("run", f"run {run_id} ({cfg.get('arch')} on {dataset})", ckpt["model"],
                         cfg.get("arch"), list(ckpt.get("class_names") or []) or None,
                         cfg.get("image_size"), parent_run_id=run_id, path=str(path))


def file_weights(path: Path, *, arch: str | None = None) -> SourceWeights:
    """A .pt/.pth/.bin file (a state dict, or our checkpoint dict with ``model``) or
    .safetensors; ``arch`` names the architecture where the file does not."""
    if not path.exists():
        raise NotFoundError(f"weights file {path} does not exist")
    check_regular_file(path, "weights file")   # a device or FIFO could be read forever
    meta: dict = {}
    if path.suffix.lower() == ".safetensors":
        state, meta = load_safetensors(path)
    else:
        data = load_torch_file(path)
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            meta = {"arch": (data.get("config") or {}).get("arch"),
                    "class_names": data.get("class_names"),
                    "image_size": (data.get("config") or {}).get("image_size")}
            data = data["model"]
        if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
            data = data["state_dict"]
        state = data
        if not isinstance(state, dict) or not state or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise ImageLabError(f"{path} is not a model checkpoint: expected a state dict "
                                "(parameter names mapped to tensors)")
    found_arch = canonical_arch(arch) if arch else meta.get("arch")
    names = meta.get("class_names")
    src = SourceWeights("file", f"file {path.name}", state, found_arch,
                        list(names) if names else None, meta.get("image_size"), path=str(path))
    if "class_names" not in meta and found_arch and timm_name(found_arch):
        # a bare state dict for a timm architecture: most likely its pretrained weights
        # (what the offline message tells users to fetch), so take their normalisation
        cfg = pretrained_config(timm_name(found_arch))
        src.mean, src.std = list(cfg.get("mean") or []) or None, list(cfg.get("std") or []) or None
    return src
