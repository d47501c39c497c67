"""timm architectures, weights of another naming scheme, offline ImageNet weights, and the
fine-tuning resolution rule (issue #16 items 1–3): real models, real weights, real photos.

Every test runs offline: ``IMAGELAB_OFFLINE`` and ``HF_HUB_OFFLINE`` are set, and the
Hugging Face cache is an empty temp folder, so nothing is ever downloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as photos
from timm.models import group_parameters

from core.data.sources import import_source
from core.errors import ImageLabError
from core.finetune.groups import HEAD, layer_groups, resolve_freeze
from core.finetune.heads import adapt_state
from core.finetune.imagenet import LITE0_LICENCE, LITE0_PACKAGE, lite0_file
from core.finetune.resolution import CANDIDATE_SIZES, EPOCH_BUDGET_S, choose_image_size
from core.finetune.setup import PROBE_EPOCHS, FinetuneConfig, prepare_finetune
from core.finetune.sources import offline_imagenet_sources, resolve_source
from core.finetune.weights_files import load_state_file
from core.finetune.weights_map import map_state
from core.models import create_model, list_archs
from core.training.config import TrainConfig
from tests.conftest import REPO, python_env


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No download from any test: ImageLab's and the hub's offline switches, an empty cache."""
    monkeypatch.setenv("IMAGELAB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _photos(root, side=48, per_split=4):
    """``train/`` and ``val/`` folders of two colour classes (reddish and bluish)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k, cls in enumerate(("ants", "bees")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_split):
                arr = rng.integers(0, 120, (side, side, 3), dtype=np.uint8)
                arr[..., 2 * k] += 120
                Image.fromarray(arr).save(folder / f"{i}.png")
    return root


@pytest.fixture
def pets(workspace, tmp_path):
    import_source(workspace, str(_photos(tmp_path / "photos")), "pets")
    return workspace


def test_timm_names_build_and_torchvision_keeps_its_names():
    assert type(create_model("resnet18", 3, 3, 32)).__module__.startswith("torchvision")
    forced = create_model("timm/resnet18", 3, 3, 32)
    assert type(forced).__module__.startswith("timm")
    lite = create_model("efficientnet_lite0", 5, 1, 32)       # grey input, 5 classes
    lite.eval()
    assert lite(torch.zeros(2, 1, 32, 32)).shape == (2, 5)
    assert lite.conv_stem.in_channels == 1
    assert "efficientnet_lite0" in list_archs() and len(list_archs()) < len(timm.list_models()) / 10
    with pytest.raises(ImageLabError, match="unknown architecture 'no_such_net'"):
        create_model("no_such_net", 3, 3, 32)


def test_timm_layer_groups_come_from_timm_metadata():
    for arch in ("efficientnet_lite0", "convnext_atto", "timm/resnet18"):
        model = create_model(arch, 4, 3, 64)
        groups = layer_groups(model)
        names = [g.name for g in groups]
        classifier = model.pretrained_cfg["classifier"]
        assert names[0] == "stem" and names[-1] == HEAD
        assert groups[-1].params == [f"{classifier}.weight", f"{classifier}.bias"]
        every = [p for g in groups for p in g.params]
        assert sorted(every) == sorted(n for n, _ in model.named_parameters())
        assert len(set(names)) == len(names)
        # one group per timm coarse group, the classifier on its own
        timm_groups = group_parameters(model, model.group_matcher(coarse=True))
        body = [ps for ps in timm_groups.values()
                if any(not p.startswith(classifier + ".") for p in ps)]
        assert len(groups) == len(body) + 1
        assert resolve_freeze("head", names) == names[:-1]
        assert resolve_freeze("last:2", names) == names[:-2]
    lite = [g.name for g in layer_groups(create_model("efficientnet_lite0", 4, 3, 64))]
    assert lite[1:3] == ["blocks.0", "blocks.1"] and lite[-2] == "blocks.6+conv_head+bn2"
    convnext = [g.name for g in layer_groups(create_model("convnext_atto", 4, 3, 64))]
    assert convnext[-2:] == ["head.norm", HEAD]


def test_foreign_names_map_by_order_and_mismatches_name_the_tensor():
    source = load_state_file(lite0_file())          # lukemelas names, a 1000-class _fc
    model = create_model("efficientnet_lite0", 3, 1, 32)
    mapped, report = map_state(model, source, label="lite0.pth")
    counted = [k for k in source if not k.endswith("num_batches_tracked")]
    assert report.method == "order" and report.count == len(counted)
    assert report.examples[0] == ("_conv_stem.weight", "conv_stem.weight")
    assert torch.equal(mapped["blocks.0.0.conv_dw.weight"], source["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(mapped["classifier.weight"], source["_fc.weight"])
    # adapt_state then fits the grey stem and rebuilds the 1000-class head for 3 classes
    state, head = adapt_state(model, mapped, None, ["a", "b", "c"])
    assert torch.allclose(state["conv_stem.weight"], source["_conv_stem.weight"].sum(1, keepdim=True))
    assert state["classifier.weight"].shape == (3, 1280) and head.new == ["a", "b", "c"]
    # names that are the model's: by name, nothing renamed
    own = create_model("efficientnet_lite0", 3, 1, 32).state_dict()
    assert map_state(model, own)[1].method == "name"
    # one tensor of another shape: the error names its index, both names and shapes
    broken = dict(source)
    broken["_blocks.0._bn1.bias"] = torch.zeros(7)
    index = counted.index("_blocks.0._bn1.bias")
    with pytest.raises(ImageLabError) as err:
        map_state(model, broken, label="lite0.pth")
    width = own["blocks.0.0.bn1.bias"].shape[0]
    assert f"tensor {index} differs: _blocks.0._bn1.bias (7) where the model has " \
           f"blocks.0.0.bn1.bias ({width})" in str(err.value)
    # another architecture: the counts differ, and the error says both
    other = create_model("mobilenetv3_large_100", 3, 3, 32)
    n_other = len([k for k in other.state_dict() if not k.endswith("num_batches_tracked")])
    with pytest.raises(ImageLabError, match=f"holds {len(counted)} tensors where the model "
                                            f"has {n_other}"):
        map_state(other, source, label="lite0.pth")


def _top5(model, src, photo) -> list[int]:
    img = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(img, size=(src.image_size, src.image_size), mode="bicubic",
                      align_corners=False, antialias=True)
    x = (x - torch.tensor(src.mean).view(3, 1, 1)) / torch.tensor(src.std).view(3, 1, 1)
    with torch.no_grad():
        return model(x)[0].topk(5).indices.tolist()


def test_offline_efficientnet_lite0_imagenet_weights_are_real(workspace):
    src = resolve_source(workspace, "efficientnet_lite0:imagenet")
    assert (src.kind, src.arch, src.image_size) == ("imagenet", "efficientnet_lite0", 224)
    assert len(src.class_names) == 1000 and src.class_names[285] == "Egyptian cat"
    cfg = timm.models.get_pretrained_cfg("efficientnet_lite0")
    assert (tuple(src.mean), tuple(src.std)) == (cfg.mean, cfg.std)
    rec = src.record()
    assert rec["licence"] == LITE0_LICENCE == "Apache-2.0" and LITE0_PACKAGE in rec["origin"]
    assert rec["mapping"]["method"] == "order" and rec["path"] == str(lite0_file())
    model = create_model(src.arch, len(src.class_names), 3, src.image_size)
    state, head = adapt_state(model, src.state, src.class_names, src.class_names, label=src.label)
    assert len(head.kept) == 1000
    model.load_state_dict(state)
    model.eval()
    # random weights would give arbitrary classes; ImageNet's give a cat, a coffee, a rocket
    assert _top5(model, src, photos.chelsea())[0] in range(281, 286)          # cats
    assert _top5(model, src, photos.coffee())[0] in (967, 968)                 # espresso, cup
    assert _top5(model, src, photos.rocket())[0] in (657, 744, 812)            # missile, shuttle
    listed = offline_imagenet_sources()[0]
    assert listed["source"] == "efficientnet_lite0:imagenet" and listed["available"]
    assert listed["classes"] == len(src.class_names) and listed["licence"] == "Apache-2.0"


def test_timm_imagenet_weights_offline_name_the_file_to_fetch(workspace):
    hub_id = timm.models.get_pretrained_cfg("mobilenetv3_large_100").hf_hub_id
    with pytest.raises(ImageLabError) as err:
        resolve_source(workspace, "mobilenetv3_large_100:imagenet")
    msg = str(err.value)
    assert f"https://huggingface.co/{hub_id}" in msg and "model.safetensors" in msg
    assert "--from FILE --arch mobilenetv3_large_100" in msg
    with pytest.raises(ImageLabError, match="no ImageNet weights for 'no_such_net'"):
        resolve_source(workspace, "no_such_net:imagenet")


def test_resolution_rule_keeps_the_weights_size_or_measures_the_cpu():
    model = create_model("regnetx_002", 2, 3, 224)
    groups = layer_groups(model)
    names = [g.name for g in groups]
    kw = {"num_train": 1, "num_val": 1}
    gpu = choose_image_size(model, groups, [], 0, 224, device_type="cuda", **kw)
    assert gpu["image_size"] == 224 and gpu["epoch_seconds"] is None
    head_only = choose_image_size(model, groups, resolve_freeze("head", names), 0, 224,
                                  device_type="cpu", **kw)
    assert head_only["image_size"] == 224 and "only the head" in head_only["rule"]
    # one image per epoch fits any budget: the weights' own size, timed
    small = choose_image_size(model, groups, [], 0, 224, device_type="cpu", **kw)
    assert small["image_size"] == 224 and 0 < small["epoch_seconds"] <= EPOCH_BUDGET_S
    assert [s for s, _ in small["measured"]][-1] == min(CANDIDATE_SIZES)   # timed first
    # the timings are kept: preparing the same fine-tune again gives the same answer
    assert choose_image_size(model, groups, [], 0, 224, device_type="cpu", **kw) == small
    # a billion images fit no size: the smallest candidate, its estimate over the budget
    huge = choose_image_size(model, groups, [], 0, 224, device_type="cpu",
                             num_train=10 ** 9, num_val=0)
    assert huge["image_size"] == min(CANDIDATE_SIZES) and huge["epoch_seconds"] > EPOCH_BUDGET_S
    assert "no size fits" in huge["rule"]


def test_prepare_finetune_records_the_resolution_and_the_user_size_wins(pets):
    cfg = TrainConfig(dataset="pets", epochs=1, batch_size=4, device="cpu")
    prep = prepare_finetune(pets, cfg, FinetuneConfig("efficientnet_lite0:imagenet", freeze="head"))
    assert prep.cfg.image_size == 224 and prep.cfg.arch == "efficientnet_lite0"
    assert prep.cfg.finetune["resolution"]["image_size"] == 224
    assert prep.cfg.finetune["origin"]["mapping"]["method"] == "order"
    assert prep.cfg.finetune["mean"] == pytest.approx(list(timm.models.get_pretrained_cfg(
        "efficientnet_lite0").mean))
    mine = prepare_finetune(pets, TrainConfig(dataset="pets", epochs=1, batch_size=4, image_size=40),
                            FinetuneConfig("efficientnet_lite0:imagenet"))
    assert mine.cfg.image_size == 40 and mine.cfg.finetune["resolution"]["rule"] == \
        "chosen by the user"


def _cli(ws, *args, timeout=600):
    env = python_env(ws.root)
    return subprocess.run([sys.executable, "-m", "core", "finetune", "--dataset", "pets",
                           "--epochs", "1", "--image-size", "32", "--batch-size", "4",
                           "--threads", "1", "--json", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_finetunes_from_offline_imagenet_and_from_a_foreign_file(pets):
    p = _cli(pets, "--from", "efficientnet_lite0:imagenet", "--freeze", "last:2")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "finished" and out["source"]["kind"] == "imagenet"
    assert out["source"]["licence"] == "Apache-2.0" and out["source"]["arch"] == "efficientnet_lite0"
    # the package's own file, lukemelas names: mapped by order, and the CLI says so
    p = _cli(pets, "--from", str(lite0_file()), "--arch", "efficientnet_lite0")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "finished" and out["source"]["kind"] == "file"
    mapping = out["source"]["mapping"]
    assert mapping["method"] == "order" and ["_conv_stem.weight", "conv_stem.weight"] in \
        mapping["examples"]
    assert f"weights mapped by order: {mapping['count']} tensors (_conv_stem.weight → " \
           "conv_stem.weight" in p.stderr
    info = json.loads((pets.runs_dir / out["run_id"] / "finetune.json").read_text())
    assert info["source"]["mapping"] == mapping and info["resolution"]["image_size"] == 32


def test_cli_timm_imagenet_offline_is_a_clear_error(pets):
    p = _cli(pets, "--from", "mobilenetv3_large_100:imagenet", timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    error = json.loads(p.stdout)["error"]
    assert "cannot be downloaded" in error and "--from FILE --arch mobilenetv3_large_100" in error


def test_imagenet_defaults_are_a_linear_probe_on_cached_flips_from_a_zero_head(pets):
    ws, name = pets, "pets"
    prep = prepare_finetune(ws, TrainConfig(dataset=name, image_size=32, batch_size=4),
                            FinetuneConfig("efficientnet_lite0:imagenet"))
    ft, cfg = prep.cfg.finetune, prep.cfg
    assert ft["freeze"] == "head" and set(ft["frozen"]) == set(ft["groups"]) - {HEAD}
    assert (cfg.crop, cfg.rotation, cfg.color_jitter, cfg.flip) == ("none", 0.0, 0.0, True)
    assert "flips only" in ft["augmentation"] and ft["feature_cache"] is True
    assert cfg.epochs == PROBE_EPOCHS == 20        # epochs left open: the probe cap
    head = prep.init["model"]
    assert torch.count_nonzero(head["classifier.weight"]) == 0      # fresh rows start at zero
    assert torch.count_nonzero(head["classifier.bias"]) == 0
    # what the user sets is kept: a crop, more epochs, everything training
    mine = prepare_finetune(ws, TrainConfig(dataset=name, image_size=32, batch_size=4, crop="resized_crop",
                                            epochs=30),
                            FinetuneConfig("efficientnet_lite0:imagenet", freeze="none"))
    assert mine.cfg.finetune["frozen"] == [] and mine.cfg.finetune["augmentation"] == ""
    assert (mine.cfg.crop, mine.cfg.epochs) == ("resized_crop", 30)
    assert mine.cfg.color_jitter > 0                                 # photos keep their jitter


def test_fresh_head_rows_are_zero_and_kept_rows_come_over():
    model = create_model("compact", 3, 1, 16)
    source = {k: v.clone().normal_() if v.is_floating_point() else v
              for k, v in create_model("compact", 2, 1, 16).state_dict().items()}
    state, report = adapt_state(model, source, ["cat", "dog"], ["dog", "emu", "cat"])
    assert report.kept == ["dog", "cat"] and report.new == ["emu"]
    w, b = state["13.weight"], state["13.bias"]
    assert torch.equal(w[0], source["13.weight"][1]) and torch.equal(w[2], source["13.weight"][0])
    assert torch.count_nonzero(w[1]) == 0 and b[1] == 0
