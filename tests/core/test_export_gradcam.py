"""Checked exports and Grad-CAM on real models and real sample images."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from core.data.preprocess import Preprocessing
from core.data.tensor_cache import load_cache
from core.errors import ImageLabError
from core.evaluation.gradcam import grad_cam, last_conv_layer, overlay
from core.inference.export_bundle import write_bundle
from core.inference.export_formats import export_model
from core.inference.export_graph import runner_for
from core.models.factory import create_model

PRE = Preprocessing(32, 3, mean=(0.5,) * 3, std=(0.25,) * 3)


def shapes_levels(ws, n=8):
    return np.asarray(load_cache(ws, "shapes", 32).pixels[:n])


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_takes_uint8_pixels_and_returns_calibrated_probabilities(sample_workspace,
                                                                        tmp_path, fmt):
    torch.manual_seed(0)
    model = create_model("compact", 6, 3, 32).eval()
    levels = shapes_levels(sample_workspace)
    result = export_model(model, fmt, tmp_path / f"m.{fmt}", levels, preprocessing=PRE,
                          temperature=1.7)
    assert result.max_abs_diff < 1e-5 and result.num_images_checked == 8
    assert (tmp_path / f"m.{fmt}").stat().st_size == result.size_bytes > 10_000
    # Another batch size (dynamic batch), uint8 N×H×W×C in, the app's probabilities out:
    # the contract's scaling, the temperature and softmax are inside the file.
    pixels = levels[:3].transpose(0, 2, 3, 1).copy()
    probs = runner_for(tmp_path / f"m.{fmt}")(pixels)
    x = torch.from_numpy(PRE.normalise(levels[:3]))
    with torch.inference_mode():
        app = torch.softmax(model(x) / 1.7, dim=1).numpy()
    np.testing.assert_allclose(probs, app, rtol=0, atol=1e-5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    if fmt == "onnx":
        graph = onnx.load(str(tmp_path / "m.onnx")).graph
        assert [i.name for i in graph.input] == ["images"]
        assert [o.name for o in graph.output] == ["probs"]
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_export_refused_above_tolerance(sample_workspace, tmp_path):
    model = create_model("compact", 6, 3, 32).eval()
    with pytest.raises(ImageLabError, match="refused"):
        export_model(model, "onnx", tmp_path / "m.onnx", shapes_levels(sample_workspace),
                     preprocessing=PRE, tolerance=0.0 - 1.0)  # no export is that close
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_format_is_clear(tmp_path):
    with pytest.raises(ImageLabError, match="unknown export format"):
        export_model(torch.nn.Linear(2, 2), "torchscript", tmp_path / "m",
                     np.zeros((1, 1, 1, 2), np.uint8), preprocessing=Preprocessing(2, 1))


def test_bundle_predicts_with_its_own_snippet(sample_workspace, tmp_path):
    torch.manual_seed(0)
    model = create_model("compact", 6, 3, 32).eval()
    levels = shapes_levels(sample_workspace)
    result = export_model(model, "onnx", tmp_path / "m.onnx", levels, preprocessing=PRE)
    classes = ["circle", "square", "triangle", "star", "hexagon", "cross"]
    bundle = write_bundle(result, tmp_path / "bundle.zip", classes=classes, preprocessing=PRE)
    out_dir = tmp_path / "unzipped"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(out_dir)
        assert set(zf.namelist()) >= {"model.onnx", "classes.json", "preprocessing.json",
                                      "predict.py", "export_check.json", "README.md"}
    Image.fromarray(levels[0].transpose(1, 2, 0)).save(out_dir / "x.png")
    run = subprocess.run([sys.executable, "predict.py", "x.png"], cwd=out_dir,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    name, label, prob = run.stdout.strip().split("\t")
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(PRE.normalise(levels[:1]))), dim=1)
    assert label == classes[int(expected.argmax())]
    assert abs(float(prob) - float(expected.max())) < 1e-4
    assert json.loads((out_dir / "classes.json").read_text()) == classes
    assert "uint8 N×H×W×C" in (out_dir / "README.md").read_text()


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
