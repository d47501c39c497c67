"""Downloading torchvision's ImageNet weights only when asked (core.finetune.imagenet_download):
offline it is a clear error and nothing is written; a file is kept only when its SHA-256
starts with the hash prefix in its name, as torch.hub checks. No test reaches the internet:
the fetches go to a real HTTP server on loopback."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import ImageLabError
from core.finetune.imagenet_download import (
    OFFLINE_SOURCE,
    download_imagenet_weights,
    fetch_hub_file,
    hash_prefix,
    torchvision_file,
)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty $TORCH_HOME, downloads off."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("IMAGELAB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "torch"


def test_torchvision_file_says_name_size_place_and_presence(torch_home):
    info = torchvision_file("resnet18")
    assert info["file"] == "resnet18-f37072fd.pth"
    assert info["folder"] == torch_home / "hub" / "checkpoints"
    assert 40 < info["size_mib"] < 50 and not info["present"]
    assert info["url"].endswith("/resnet18-f37072fd.pth")
    assert hash_prefix(info["file"]) == "f37072fd" and hash_prefix("weights.pth") is None


def test_offline_download_is_a_clear_error_and_writes_nothing(torch_home):
    calls = []
    with pytest.raises(ImageLabError) as err:
        download_imagenet_weights("resnet18", lambda *a: calls.append(a))
    text = str(err.value)
    assert "resnet18-f37072fd.pth cannot be downloaded: downloads are off" in text
    assert OFFLINE_SOURCE in text and "works offline" in text
    assert calls == []
    assert not list(torch_home.rglob("*"))       # not even the hub folder


def test_a_file_already_there_is_used_without_any_download(torch_home):
    info = torchvision_file("mobilenet_v3_small")
    info["folder"].mkdir(parents=True)
    info["path"].write_bytes(b"placed by hand")
    assert download_imagenet_weights("mobilenet_v3_small") == info["path"]
    assert torchvision_file("mobilenet_v3_small")["present"]


def test_a_hub_file_is_kept_only_when_its_hash_matches_its_name(tmp_path, serve_routes):
    good, bad = b"real weights" * 1000, b"tampered weights"
    prefix = hashlib.sha256(good).hexdigest()[:8]
    base = serve_routes({f"/models/net-{prefix}.pth": ("application/octet-stream", good),
                         "/models/net-00000000.pth": ("application/octet-stream", bad)})
    folder = tmp_path / "hub" / "checkpoints"
    seen = []
    path = fetch_hub_file(f"{base}/models/net-{prefix}.pth", folder, allow_private=True,
                          progress=lambda done, total, _t: seen.append((done, total)))
    assert path == folder / f"net-{prefix}.pth" and path.read_bytes() == good
    assert seen[-1] == (len(good), len(good))
    with pytest.raises(ImageLabError, match="not the one its name promises"):
        fetch_hub_file(f"{base}/models/net-00000000.pth", folder, allow_private=True)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]   # no torn or partial file
