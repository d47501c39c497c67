"""The model factory: presets as specified, torchvision archs on 1- and 3-channel data."""

import pytest
import torch
from torch import nn

from core.errors import ImageLabError
from core.models import create_model, list_archs


@pytest.mark.parametrize("arch", list_archs())
def test_every_arch_classifies_gray_and_colour_batches(arch):
    size = 32
    for channels in (1, 3):
        model = create_model(arch, 7, channels, size).eval()
        with torch.inference_mode():
            out = model(torch.rand(2, channels, size, size))
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()


def test_torchvision_archs_are_untrained_torchvision_models():
    import torchvision
    m = create_model("resnet18", 10, 1, 28)
    assert isinstance(m, torchvision.models.ResNet)
    assert m.conv1.in_channels == 1 and m.fc.out_features == 10
    small = create_model("mobilenet_v3_small", 4, 3, 16).eval()  # tiny inputs still work
    assert small(torch.rand(1, 3, 16, 16)).shape == (1, 4)


def test_pytorch_cnn_preset_matches_its_description():
    m = create_model("pytorch-cnn", 10, 3, 32)
    convs = [l.out_channels for l in m.modules() if isinstance(l, nn.Conv2d)]
    fcs = [l.out_features for l in m.modules() if isinstance(l, nn.Linear)]
    assert convs == [64, 128] and fcs == [1024, 512, 10]
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.modules()) == 2


def test_keras_mnist_preset_matches_its_description():
    m = create_model("keras-mnist", 10, 1, 28)
    convs = [l.out_channels for l in m.modules() if isinstance(l, nn.Conv2d)]
    fcs = [l.out_features for l in m.modules() if isinstance(l, nn.Linear)]
    drops = [l.p for l in m.modules() if isinstance(l, nn.Dropout)]
    assert convs == [32, 64] and fcs == [128, 10] and drops == [0.5]


def test_clear_errors_for_impossible_models():
    with pytest.raises(ImageLabError, match="at least 32 px"):
        create_model("convnext_tiny", 10, 1, 16)
    with pytest.raises(ImageLabError, match="unknown architecture"):
        create_model("resnet999", 10, 3, 32)
    with pytest.raises(ImageLabError, match="at least 2 classes"):
        create_model("compact", 1, 3, 32)
