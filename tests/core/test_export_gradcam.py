"""Checked exports and Grad-CAM on real models and real sample images."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.preprocess import Preprocessing
from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.evaluation.gradcam import grad_cam, last_conv_layer, overlay
from core.inference.export_formats import export_model, write_bundle
from core.models.factory import create_model


def shapes_batch(ws, n=8):
    cache = load_cache(ws, "shapes", 32)
    x = torch.from_numpy(np.array(cache.pixels[:n])).float() / 255.0
    return (x - 0.5) / 0.25


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_is_checked_against_pytorch(sample_workspace, tmp_path, fmt):
    torch.manual_seed(0)
    model = create_model("compact", 6, 3, 32).eval()
    x = shapes_batch(sample_workspace)
    result = export_model(model, fmt, tmp_path / f"m.{fmt}", x)
    assert result.max_abs_diff < 1e-4 and result.num_images_checked == 8
    assert (tmp_path / f"m.{fmt}").stat().st_size == result.size_bytes > 10_000
    # A different batch size works too (dynamic batch dimension).
    if fmt == "pt2":
        prog = torch.export.load(str(tmp_path / "m.pt2")).module()
        with torch.inference_mode():
            assert torch.allclose(prog(x[:3]), model(x[:3]), atol=1e-4)


def test_export_refused_above_tolerance(sample_workspace, tmp_path):
    model = create_model("compact", 6, 3, 32).eval()
    with pytest.raises(ImageLabError, match="refused"):
        export_model(model, "onnx", tmp_path / "m.onnx", shapes_batch(sample_workspace),
                     tolerance=0.0 - 1.0)  # no export can be closer than a negative tolerance
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_format_is_clear(tmp_path):
    with pytest.raises(ImageLabError, match="unknown export format"):
        export_model(torch.nn.Linear(2, 2), "torchscript", tmp_path / "m", torch.zeros(1, 1, 1, 2))


def test_bundle_predicts_with_its_own_snippet(sample_workspace, tmp_path):
    torch.manual_seed(0)
    model = create_model("compact", 6, 3, 32).eval()
    x = shapes_batch(sample_workspace)
    result = export_model(model, "onnx", tmp_path / "m.onnx", x)
    pre = Preprocessing(32, 3, mean=(0.5,) * 3, std=(0.25,) * 3)
    classes = ["circle", "square", "triangle", "star", "hexagon", "cross"]
    bundle = write_bundle(result, tmp_path / "bundle.zip", classes=classes, preprocessing=pre)
    out_dir = tmp_path / "unzipped"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(out_dir)
        assert set(zf.namelist()) >= {"model.onnx", "classes.json", "preprocessing.json",
                                      "predict.py"}
    img = (np.asarray(load_cache(sample_workspace, "shapes", 32).pixels[0])
           .transpose(1, 2, 0).astype(np.uint8))
    Image.fromarray(img).save(out_dir / "x.png")
    run = subprocess.run([sys.executable, "predict.py", "x.png"], cwd=out_dir,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    name, label, prob = run.stdout.strip().split("\t")
    with torch.inference_mode():
        expected = classes[int(model(x[:1]).argmax())]
    assert label == expected and 0 < float(prob) <= 1
    assert json.loads((out_dir / "classes.json").read_text()) == classes


def test_grad_cam_highlights_the_evidence():
    """Channel 0 responds to bright pixels, channel 1 to dark ones; class k = mean of channel k.

    The image is dark with a bright square top-left, so Grad-CAM for class 0 must light up
    the square and Grad-CAM for class 1 everything else.
    """

    class TwoDetectors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 1, bias=True)
            with torch.no_grad():
                self.conv.weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
                self.conv.bias[:] = torch.tensor([0.0, 1.0])

        def forward(self, x):
            return torch.relu(self.conv(x)).mean(dim=(2, 3))

    model = TwoDetectors().eval()
    x = torch.zeros(1, 1, 16, 16)
    x[:, :, :6, :6] = 1.0
    bright, cls0 = grad_cam(model, x, class_index=0)
    dark, cls1 = grad_cam(model, x, class_index=1)
    assert (cls0, cls1) == (0, 1) and bright.shape == (16, 16)
    assert bright[:5, :5].min() > 0.9 and bright[8:, 8:].max() < 0.1
    assert dark[:5, :5].max() < 0.1 and dark[8:, 8:].min() > 0.9
    assert all(p.grad is None for p in model.parameters())  # model left untouched
    assert grad_cam(model, x)[1] == 1  # default: the predicted class (dark area is larger)


def test_grad_cam_on_torchvision_resnet_and_overlay():
    model = create_model("resnet18", 4, 3, 64).eval()
    assert isinstance(last_conv_layer(model), torch.nn.Conv2d)
    cam, cls = grad_cam(model, torch.rand(1, 3, 64, 64))
    assert cam.shape == (64, 64) and 0 <= cam.min() and cam.max() <= 1 and 0 <= cls < 4
    out = overlay(np.zeros((64, 64), dtype=np.uint8), cam, opacity=0.6)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
