"""Grad-CAM of a model that works sits on the subject: a real cat photo pasted into one
part of a grass picture, explained by the offline ImageNet EfficientNet-Lite0, has its
hottest point on the cat and the cat at least twice as hot as the grass, wherever the cat
is (the Demo draws this map)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

from core.evaluation.gradcam import grad_cam
from core.finetune.sources import resolve_source
from core.finetune.weights_map import map_state
from core.models import create_model

CATS = range(281, 286)          # ImageNet's tabby, tiger, Persian, Siamese and Egyptian cats


@pytest.fixture(scope="module")
def imagenet_model():
    src = resolve_source(None, "efficientnet_lite0:imagenet")
    model = create_model("efficientnet_lite0", 1000, 3, 224)
    state, _ = map_state(model, src.state, label=src.label)
    model.load_state_dict(state)
    return model.eval(), src


@pytest.mark.parametrize("corner", [(0, 0), (224, 0), (0, 298), (224, 298)])
def test_the_heat_map_sits_on_the_cat(imagenet_model, corner):
    model, src = imagenet_model
    canvas = Image.fromarray(photos.grass()).convert("RGB").resize((448, 448))
    canvas.paste(Image.fromarray(photos.chelsea()).resize((224, 150)), corner)
    x = torch.from_numpy(np.array(canvas.resize((224, 224), Image.Resampling.BICUBIC)))
    x = x.permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(src.mean).view(1, 3, 1, 1)) / torch.tensor(src.std).view(1, 3, 1, 1)
    cam, cls = grad_cam(model, x)
    assert cls in CATS                                    # the photo is seen as a cat
    left, top = corner[0] // 2, corner[1] // 2            # the cat's box on the 224 px input
    on_cat = np.zeros(cam.shape, bool)
    on_cat[top:top + 75, left:left + 112] = True          # 17% of the image
    peak = np.unravel_index(cam.argmax(), cam.shape)
    assert on_cat[peak], f"the hottest point {peak} is off the cat"
    ratio = cam[on_cat].mean() / cam[~on_cat].mean()
    assert ratio > 2, f"the cat is only {ratio:.1f}× as hot as the grass"
