"""What ``BatchAugment`` (the engine's per-sample augmentation) does to real images.

The batches are real generated images (the ``sample:shapes`` renderer, RGB 32 px) and
the scikit-learn digits (gray 8 px), as uint8 NCHW tensors, like the training cache's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.samples import shapes_images
from core.training.config import TrainConfig
from core.training.data import BatchAugment

OFF = dict(crop="none", flip=False, rotation=0.0, color_jitter=0.0, normalize=False)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    pixels = np.stack([px for px, _ in shapes_images(count=32, size=32)])      # N,H,W,3
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def gray() -> torch.Tensor:
    from sklearn.datasets import load_digits
    images = load_digits().images[:32]                                          # 0..16 floats
    return torch.from_numpy((images * 255 / 16).round().astype(np.uint8))[:, None]


def augment(channels: int, mean=None, std=None, **options) -> BatchAugment:
    cfg = TrainConfig(**{**OFF, **options})
    return BatchAugment(cfg, mean or [0.5] * channels, std or [0.25] * channels, channels)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_unit_floats(out: torch.Tensor, batch: torch.Tensor) -> None:
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("which", ["rgb", "gray"])
def test_with_everything_off_it_only_scales_to_unit_floats(which, request):
    batch = request.getfixturevalue(which)
    aug = augment(batch.shape[1])
    assert not aug.geometric
    out = aug(batch, seeded())
    assert_unit_floats(out, batch)
    assert torch.equal(out, batch.float() / 255)
    assert batch.dtype == torch.uint8 and int(batch.max()) > 200     # the input is untouched


def test_normalise_uses_the_given_mean_and_std(rgb):
    mean, std = [0.2, 0.4, 0.6], [0.1, 0.2, 0.3]
    out = augment(3, mean, std, normalize=True)(rgb, seeded())
    expected = (rgb.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_eval_mode_never_augments(rgb):
    aug = augment(3, crop="resized_crop", crop_scale=0.5, flip=True, rotation=30.0,
                  color_jitter=0.4)
    assert aug.geometric
    assert torch.equal(aug(rgb, seeded(), train=False), rgb.float() / 255)
    mean, std = [0.3, 0.3, 0.3], [0.2, 0.2, 0.2]
    normalised = augment(3, mean, std, normalize=True, flip=True, rotation=30.0)
    torch.testing.assert_close(normalised(rgb, seeded(), train=False),
                               (rgb.float() / 255 - 0.3) / 0.2)


@pytest.mark.parametrize("which", ["rgb", "gray"])
def test_flip_mirrors_some_images_and_leaves_the_others(which, request):
    batch = request.getfixturevalue(which)
    x = batch.float() / 255
    out = augment(batch.shape[1], flip=True)(batch, seeded(3))
    assert_unit_floats(out, batch)
    same = [torch.allclose(o, a, atol=1e-5) for o, a in zip(out, x)]
    mirrored = [torch.allclose(o, a.flip(-1), atol=1e-5) for o, a in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))       # nothing else happens
    assert any(m and not s for s, m in zip(same, mirrored))  # some are flipped ...
    assert any(s and not m for s, m in zip(same, mirrored))  # ... and some are not


@pytest.mark.parametrize("which", ["rgb", "gray"])
def test_translate_moves_the_pixels(which, request):
    batch = request.getfixturevalue(which)
    x = batch.float() / 255
    out = augment(batch.shape[1], crop="translate", translate=0.2)(batch, seeded(1))
    assert_unit_floats(out, batch)
    moved = [(o - a).abs().max() > 0.05 for o, a in zip(out, x)]
    assert sum(moved) >= len(batch) * 3 // 4
    # a shift keeps the picture: the mean brightness moves much less than the pixels do
    assert (out.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs().max() < (out - x).abs().max()


def test_translate_of_zero_and_a_full_crop_do_nothing(rgb):
    for options in (dict(crop="translate", translate=0.0), dict(crop="resized_crop", crop_scale=1.0)):
        aug = augment(3, **options)
        assert not aug.geometric
        assert torch.equal(aug(rgb, seeded()), rgb.float() / 255)


def test_resized_crop_and_rotation_change_pixels_but_not_the_shape(rgb):
    x = rgb.float() / 255
    for options in (dict(crop="resized_crop", crop_scale=0.4), dict(rotation=40.0)):
        out = augment(3, **options)(rgb, seeded(2))
        assert_unit_floats(out, rgb)
        changed = [(o - a).abs().max() > 0.05 for o, a in zip(out, x)]
        assert sum(changed) >= len(rgb) * 3 // 4      # a draw near "no change" may happen


@pytest.mark.parametrize("which", ["rgb", "gray"])
def test_colour_jitter_changes_values_within_range(which, request):
    batch = request.getfixturevalue(which)
    x = batch.float() / 255
    out = augment(batch.shape[1], color_jitter=0.5)(batch, seeded(4))
    assert_unit_floats(out, batch)
    changed = [(o - a).abs().max() > 0.02 for o, a in zip(out, x)]
    assert sum(changed) >= len(batch) * 3 // 4
    assert torch.equal(augment(batch.shape[1], color_jitter=0.5)(batch, seeded(4), train=False), x)


def test_gray_jitter_is_brightness_and_contrast_only(gray):
    """On gray images jitter rescales values per image: it never reorders two pixels
    (a brighter pixel stays at least as bright), and it moves no pixel."""
    x = gray.float().flatten(1) / 255
    out = augment(1, color_jitter=0.5)(gray, seeded(5)).flatten(1)
    order = torch.sort(x, dim=1, stable=True).indices
    along = out.gather(1, order)
    assert (along[:, 1:] - along[:, :-1] >= -1e-6).all()
    # pixels equal in the input are equal in the output (no spatial change)
    zero = x == 0
    per_image = [out[i][zero[i]] for i in range(len(x))]
    assert all(v.max() - v.min() < 1e-6 for v in per_image if v.numel())


def test_the_same_seed_gives_the_same_batch_and_another_seed_another(rgb):
    aug = augment(3, crop="resized_crop", crop_scale=0.5, flip=True, rotation=20.0,
                  color_jitter=0.3, normalize=True)
    a, b, c = aug(rgb, seeded(7)), aug(rgb, seeded(7)), aug(rgb, seeded(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
