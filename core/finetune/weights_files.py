"""``SourceWeights`` and the readers of weights files.

``SourceWeights`` is what every pretrained source resolves to (``core.finetune.sources``,
``core.finetune.imagenet``): a state dict plus what is known about it. The readers load
``.pt``/``.pth``/``.bin`` files with ``weights_only=True`` (a file that is not a checkpoint
is refused with a clear message, never executed) and ``.safetensors`` files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import ImageLabError
from core.training.checkpoint import load_checkpoint


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
    licence: str | None = None         # the weights' licence, where known
    origin: str | None = None          # where the file came from (a package and version…)
    mapping: dict | None = None        # weights_map.MappingReport.to_dict(): how names matched

    def record(self) -> dict:
        """What a fine-tuning run stores about its start."""
        return {"kind": self.kind, "label": self.label, "arch": self.arch,
                "parent_run_id": self.parent_run_id, "path": self.path,
                "num_classes": len(self.class_names) if self.class_names else None,
                "image_size": self.image_size, "licence": self.licence, "origin": self.origin,
                "mapping": self.mapping}


def load_torch_file(path: Path):
    """``load_checkpoint`` (weights_only=True), with any unpickling failure made a clear error:
    a text or random file can fail deep in the unpickler with IndexError or KeyError."""
    try:
        return load_checkpoint(path)
    except ImageLabError:
        raise
    except Exception as exc:     # whatever the bytes were, they are not weights
        raise ImageLabError(f"checkpoint {path} cannot be read: it is not a PyTorch weights "
                            f"file ({type(exc).__name__})") from None


def load_state_file(path: Path) -> dict:
    """A file holding a plain state dict of tensors; anything else is an ``ImageLabError``."""
    data = load_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ImageLabError(f"{path} is not a state dict of tensors; delete it and put the "
                            "original file there")
    return data


def load_safetensors(path: Path) -> tuple[dict, dict]:
    """(state dict, metadata: ``arch``, ``class_names`` where the file says) of a
    ``.safetensors`` file."""
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
