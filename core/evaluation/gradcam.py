"""Grad-CAM: where a convolutional model looked when it chose a class.

``grad_cam(model, x, class_index)`` weights the final feature map's activations by the
spatially averaged gradient of the class score, keeps the positive part, upsamples to the
input size and scales to [0, 1]. The final feature map is the last 4-D output (larger than
1×1) of any module in the forward pass: the body's last activation, after its last
convolution's BatchNorm and ReLU, whatever the architecture (builder CNNs, torchvision,
timm). The raw output of the last convolution put less of the heat on the subject: on a
cat pasted into a grass picture, EfficientNet-Lite0's conv_head gave the cat 2.4× the mean
heat of the rest with the peak outside it, its final activation 2.8× with the peak inside.
It never modifies the model (hooks are removed, parameters untouched), so it is safe on a
model shared through ``st.cache_resource``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ImageLabError


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The model's last ``nn.Conv2d`` (Grad-CAM's target); raises ``ImageLabError`` when there is
    none."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None:
        raise ImageLabError("Grad-CAM needs a convolutional layer; this model has none")
    return last


def grad_cam(model: nn.Module, x: torch.Tensor, class_index: int | None = None,
             layer: nn.Module | None = None) -> tuple[np.ndarray, int]:
    """Return (heatmap H×W in [0, 1], the class explained) for one image ``x`` (1×C×H×W)."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError("grad_cam takes one image as a 1×C×H×W tensor")
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.ndim == 4 and (
                layer is not None or output.shape[-1] * output.shape[-2] > 1
                or "act" not in captured):
            captured["act"] = output

    if layer is None:
        last_conv_layer(model)       # a clear error for a model without convolutions
    targets = [layer] if layer is not None else [m for m in model.modules() if m is not model]
    handles = [m.register_forward_hook(hook) for m in targets]
    try:
        with torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)  # grads flow even if params are frozen
            logits = model(inp)
            if class_index is None:
                class_index = int(logits[0].argmax())
            act = captured["act"]
            grads, = torch.autograd.grad(logits[0, class_index], act)
    finally:
        for handle in handles:
            handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach().float()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    return cam.cpu().numpy(), class_index


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet-like colours) over an H×W or H×W×3 uint8 image."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if heatmap.shape != image.shape[:2]:
        t = torch.from_numpy(heatmap)[None, None].float()
        heatmap = F.interpolate(t, size=image.shape[:2], mode="bilinear",
                                align_corners=False)[0, 0].numpy()
    colours = _jet(np.clip(heatmap, 0, 1))
    out = image.astype(np.float32) * (1 - opacity) + colours * opacity
    return np.clip(out, 0, 255).astype(np.uint8)


def _jet(v: np.ndarray) -> np.ndarray:
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1) * 255


def explain(lm, img, class_index: int | None = None, opacity: float = 0.5,
            display: int = 192) -> tuple[np.ndarray, int]:
    """Grad-CAM overlay of a PIL image for a ``LoadedModel``, upscaled to ``display`` px.

    Returns (RGB uint8 overlay, the class index explained).
    """
    from PIL import Image
    x = lm.preprocess([img])
    cam, cls = grad_cam(lm.model, x, class_index)
    shown = img.convert("RGB").resize((display, display), Image.Resampling.NEAREST
                                      if max(img.size) < display else Image.Resampling.BILINEAR)
    return overlay(np.asarray(shown), cam, opacity), cls
