"""``BatchAugment``: per-sample augmentation of whole uint8 batches on their device.

torchvision.transforms.v2 would draw one set of parameters per call, i.e. per batch; here
every sample draws its own. One ``affine_grid``/``grid_sample`` pass does translate or
random-resized-crop, flip and rotation together; colour jitter is per-sample brightness,
contrast and saturation.

The geometric parameters are drawn in one place (``draw``), in a fixed order, so code that
trains on precomputed features of the two flip states (``core.finetune.feature_cache``)
can draw the same flips from the same generator with ``draw_flips`` and see the very
batches the pixel path would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF


class BatchAugment:
    """Per-sample augmentation of a whole uint8 batch on its device; returns normalised floats."""

    def __init__(self, cfg, mean: list[float], std: list[float], channels: int):
        self.crop, self.translate, self.scale = cfg.crop, cfg.translate, cfg.crop_scale
        self.flip, self.rotation, self.jitter = bool(cfg.flip), float(cfg.rotation or 0), \
            float(cfg.color_jitter or 0)
        self.normalize, self.mean, self.std = cfg.normalize, mean, std
        self.channels = channels

    @property
    def geometric(self) -> bool:
        """Whether any geometric transform (crop, flip, rotation) is on."""
        return (self.crop == "translate" and self.translate > 0) or \
            (self.crop == "resized_crop" and self.scale < 1) or self.flip or self.rotation > 0

    @property
    def flip_only(self) -> bool:
        """Whether a training batch differs from the plain one by horizontal flips at most
        (no crop, translation, rotation or colour jitter): then every augmented image is
        one of two fixed images, itself or its mirror."""
        return not ((self.crop == "translate" and self.translate > 0)
                    or (self.crop == "resized_crop" and self.scale < 1)
                    or self.rotation > 0 or self.jitter > 0)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None,
                 train: bool = True) -> torch.Tensor:
        """Normalised floats of ``batch``; augmented with draws from ``generator`` when
        ``train``, else only scaled and normalised."""
        x = batch.float().div_(255)
        if train:
            if self.geometric:
                x = self._affine(x, self.draw(len(x), generator, x.device))
            if self.jitter > 0:
                x = self._jitter(x, generator)
        return self._normalise(x)

    def with_flips(self, batch: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Normalised floats of ``batch`` as a ``flip_only`` training batch that drew these
        ``flips`` (±1 per sample, -1: mirrored) would have them, bit for bit."""
        x = batch.float().div_(255)
        if self.geometric:
            n, dev = len(x), x.device
            zero = torch.zeros(n, device=dev)
            x = self._affine(x, {"scale": torch.ones(n, device=dev), "tx": zero, "ty": zero,
                                 "angle": zero, "flip": flips.to(dev, torch.float32)})
        return self._normalise(x)

    def draw_flips(self, n: int, generator: torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
        """The flips (±1 per sample) a training batch of ``n`` draws, consuming ``generator``
        exactly as ``__call__`` does for a ``flip_only`` augmentation."""
        if not self.geometric:
            return torch.ones(n, device=device)
        return self.draw(n, generator, device)["flip"]

    def draw(self, n: int, g: torch.Generator | None, dev) -> dict[str, torch.Tensor]:
        """Per-sample geometric parameters for ``n`` images (scale, tx, ty, angle, flip),
        drawn from ``g`` in a fixed order: crop, rotation, flip."""
        scale = torch.ones(n, device=dev)
        tx, ty = torch.zeros(n, device=dev), torch.zeros(n, device=dev)
        if self.crop == "translate":
            tx = (self._rand(n, g, dev) * 2 - 1) * 2 * self.translate
            ty = (self._rand(n, g, dev) * 2 - 1) * 2 * self.translate
        elif self.crop == "resized_crop":
            area = self.scale + (1 - self.scale) * self._rand(n, g, dev)
            scale = area.sqrt()
            room = 1 - scale
            tx = (self._rand(n, g, dev) * 2 - 1) * room
            ty = (self._rand(n, g, dev) * 2 - 1) * room
        angle = (self._rand(n, g, dev) * 2 - 1) * self.rotation * torch.pi / 180 \
            if self.rotation > 0 else torch.zeros(n, device=dev)
        flip = torch.where(self._rand(n, g, dev) < 0.5, -1.0, 1.0) if self.flip \
            else torch.ones(n, device=dev)
        return {"scale": scale, "tx": tx, "ty": ty, "angle": angle, "flip": flip}

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return TF.normalize(x, self.mean, self.std) if self.normalize else x

    def _rand(self, n: int, g, device) -> torch.Tensor:
        return torch.rand(n, generator=g, device=device)

    def _affine(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        cos, sin = p["angle"].cos() * p["scale"], p["angle"].sin() * p["scale"]
        flip = p["flip"]
        theta = torch.stack([torch.stack([cos * flip, -sin, p["tx"]], 1),
                             torch.stack([sin * flip, cos, p["ty"]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        pad = "zeros" if self.channels == 1 else "reflection"
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=pad, align_corners=False)

    def _jitter(self, x: torch.Tensor, g) -> torch.Tensor:
        n, dev, j = x.shape[0], x.device, self.jitter
        shape = (n, 1, 1, 1)
        b = (1 + (self._rand(n, g, dev) * 2 - 1) * j).view(shape)
        c = (1 + (self._rand(n, g, dev) * 2 - 1) * j).view(shape)
        x = x * b
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean
        if self.channels == 3:
            s = (1 + (self._rand(n, g, dev) * 2 - 1) * j).view(shape)
            gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
            x = (x - gray) * s + gray
        return x.clamp_(0, 1)
