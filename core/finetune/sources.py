"""Where pretrained weights come from: a run of the workspace, torchvision's ImageNet
weights, or a checkpoint file (.pt/.pth state dict, our checkpoint dict, or .safetensors).

``resolve_source(ws, spec)`` returns a ``SourceWeights``: a state dict plus what is known
about it (architecture, class names, image size, normalisation). Every ``torch.load``
passes ``weights_only=True``; a file that is not a checkpoint is refused with a clear
message, never executed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.data.files import check_regular_file
from core.errors import ImageLabError, NotFoundError
from core.models.torchvision_models import TORCHVISION_ARCHS
from core.store.run_paths import run_paths
from core.store.workspace import Workspace
from core.training.checkpoint import load_checkpoint

IMAGENET = "imagenet"
# Set to 1 to never try a download (tests, air-gapped machines): a missing file is an error.
OFFLINE_ENV = "IMAGELAB_OFFLINE"


@dataclass
class SourceWeights:
    """Weights to start fine-tuning from: the state dict and what is known of where it came from."""
    kind: str                          # run | imagenet | file
    label: str                         # in the user's words, for the UI and the run's record
    state: dict = field(repr=False)    # parameter name -> tensor
    arch: str | None = None
    class_names: list[str] | None = None
    image_size: int | None = None
    mean: list[float] | None = None    # the normalisation the weights expect (ImageNet)
    std: list[float] | None = None
    parent_run_id: str | None = None
    path: str | None = None

    def record(self) -> dict:
        """What a fine-tuning run stores about its start."""
        return {"kind": self.kind, "label": self.label, "arch": self.arch,
                "parent_run_id": self.parent_run_id, "path": self.path,
                "num_classes": len(self.class_names) if self.class_names else None,
                "image_size": self.image_size}


def is_imagenet_spec(spec: str) -> str | None:
    """``resnet18:imagenet`` or ``imagenet:resnet18`` -> ``resnet18``."""
    m = re.fullmatch(r"(?:imagenet:([\w]+)|([\w]+):imagenet)", spec.strip())
    return (m.group(1) or m.group(2)) if m else None


def resolve_source(ws: Workspace, spec: str, *, arch: str | None = None) -> SourceWeights:
    """A run id, ``ARCH:imagenet``, or a path to a weights file."""
    spec = (spec or "").strip()
    if not spec:
        raise ImageLabError("choose where to start from: a run id, ARCH:imagenet, or a file")
    tv_arch = is_imagenet_spec(spec)
    if tv_arch:
        return imagenet_weights(tv_arch)
    if _run_exists(ws, spec):
        return run_weights(ws, spec)
    path = Path(spec).expanduser()
    if path.exists() or path.suffix.lower() in (".pt", ".pth", ".safetensors", ".bin"):
        return file_weights(path, arch=arch)
    raise NotFoundError(f"{spec!r} is neither a run of this workspace, ARCH:imagenet (e.g. "
                        "resnet18:imagenet), nor an existing weights file")


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


def hub_checkpoint_dir() -> Path:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_file(arch: str) -> tuple[object, str, Path]:
    """(torchvision weights enum value, expected file name, folder) for ``arch``."""
    import torchvision.models as tvm
    if arch not in TORCHVISION_ARCHS:
        raise ImageLabError(f"no ImageNet weights for {arch!r}; choose one of "
                            f"{', '.join(TORCHVISION_ARCHS)}")
    weights = tvm.get_model_weights(arch).DEFAULT
    return weights, weights.url.rsplit("/", 1)[-1], hub_checkpoint_dir()


def imagenet_weights(arch: str) -> SourceWeights:
    """torchvision's ImageNet weights for ``arch``, from the hub cache or downloaded."""
    weights, name, folder = imagenet_file(arch)
    path = folder / name
    if path.exists():
        state = _load_state_file(path)
    elif os.environ.get(OFFLINE_ENV) == "1":
        raise ImageLabError(_missing_weights_message(arch, name, folder, weights.url))
    else:
        try:
            state = torch.hub.load_state_dict_from_url(weights.url, model_dir=str(folder),
                                                       progress=False, check_hash=True,
                                                       weights_only=True)
        except OSError:          # URLError (offline) is an OSError
            raise ImageLabError(_missing_weights_message(arch, name, folder, weights.url)) \
                from None
    tf = weights.transforms()
    return SourceWeights("imagenet", f"{arch} ImageNet weights ({weights.name})", state, arch,
                         list(weights.meta.get("categories") or []) or None,
                         int(tf.crop_size[0]), [float(v) for v in tf.mean],
                         [float(v) for v in tf.std], path=str(path))


def _missing_weights_message(arch: str, name: str, folder: Path, url: str) -> str:
    return (f"the ImageNet weights for {arch} are not on this machine and cannot be downloaded "
            f"(no network): put the file {name} in {folder} (download it from {url} on a "
            "machine with a connection), or set $TORCH_HOME to a folder whose "
            "hub/checkpoints holds it")


def file_weights(path: Path, *, arch: str | None = None) -> SourceWeights:
    """A .pt/.pth file (a state dict, or our checkpoint dict with ``model``) or .safetensors."""
    if not path.exists():
        raise NotFoundError(f"weights file {path} does not exist")
    check_regular_file(path, "weights file")   # a device or FIFO could be read forever
    meta: dict = {}
    if path.suffix.lower() == ".safetensors":
        state, meta = _load_safetensors(path)
    else:
        data = _load_torch_file(path)
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
    found_arch = arch or meta.get("arch")
    names = meta.get("class_names")
    return SourceWeights("file", f"file {path.name}", state, found_arch,
                         list(names) if names else None, meta.get("image_size"), path=str(path))


def _load_torch_file(path: Path):
    """``load_checkpoint`` (weights_only=True), with any unpickling failure made a clear error:
    a text or random file can fail deep in the unpickler with IndexError or KeyError."""
    try:
        return load_checkpoint(path)
    except ImageLabError:
        raise
    except Exception as exc:     # whatever the bytes were, they are not weights
        raise ImageLabError(f"checkpoint {path} cannot be read: it is not a PyTorch weights "
                            f"file ({type(exc).__name__})") from None


def _load_state_file(path: Path) -> dict:
    data = _load_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ImageLabError(f"{path} is not a state dict of tensors; delete it and put the "
                            "original torchvision file there")
    return data


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    import json

    from safetensors import SafetensorError, safe_open
    try:
        state, meta = {}, {}
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
            for key in fh.keys():
                state[key] = fh.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageLabError(f"{path} is not a readable .safetensors file: {first}") from None
    if "arch" in raw:
        meta["arch"] = raw["arch"]
    if "class_names" in raw:
        try:
            meta["class_names"] = list(json.loads(raw["class_names"]))
        except ValueError:
            pass
    if not state:
        raise ImageLabError(f"{path} holds no tensors")
    return state, meta
