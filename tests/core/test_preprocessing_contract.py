"""One preprocessing contract: the same real files give the same tensors on every path.

Real image files of several sizes, aspect ratios and modes (L, RGB, RGBA, palette with
transparency, JPEGs with an EXIF orientation, one larger than the import cache's side)
go through the tensor cache (built at import from the importer's pixels, prebuilt beside
the insert, and rebuilt from the files), ``LoadedModel.preprocess``, the demo path
(``single_input``/``predict_one``), the service (its decode path and a real server over
HTTP), evaluation (``cache_inputs``) and an exported bundle's ``predict.py`` run from its
extracted folder in a fresh subprocess (its model takes the resized uint8 levels and does
the scaling inside). uint8 levels must be identical; float inputs equal to within 1e-6. This is done for the gray digits run of ``_trained_master`` and for
an RGB run trained here on the shapes sample.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import decode, preprocess
from core.data.catalog import get_dataset_id
from core.data.decode import load_image_file
from core.data.ingest import DatasetWriter
from core.data.preprocess import Preprocessing
from core.data.tensor_cache import IMPORT_CACHE_MAX_SIDE, load_cache
from core.evaluation.evaluate import cache_inputs
from core.inference.predictor import (
    decode_for_prediction,
    load_run_model,
    planar_pixels,
    predict_one,
    single_input,
)
from core.inference.run_export import export_run
from core.store.workspace import open_workspace
from core.training.config import TrainConfig
from core.training.run import train_run
from core.training.runs import create_run
from tests.conftest import copy_workspace
from tests.core.test_service import Server

FLOAT_TOLERANCE = 1e-6


def _content(rng: np.random.Generator, width: int, height: int, channels: int) -> np.ndarray:
    """Smooth gradients plus noise: every resize filter leaves its own trace on it."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for c in range(channels):
        base = 127 + 90 * np.sin(xx / (3 + 2 * c) + yy / (5 + c))
        planes.append(base + rng.normal(0, 30, (height, width)))
    arr = np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def _exif_jpeg(path: Path, img: Image.Image, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())


def make_files(folder: Path) -> dict[str, list[Path]]:
    """Write the test images; returns {"gray": [...], "rgb": [...], "large": [...]}.

    Sizes are chosen so that each set's median longer side is the size of the run it is
    fed to (8 for gray, 32 for RGB), with and without its large image, so the caches built
    at import are at the run's size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    gray, rgb = [], []

    def save(name: str, img: Image.Image, group: list, **kw) -> None:
        img.save(folder / name, **kw)
        group.append(folder / name)

    def l_img(w, h):
        return Image.fromarray(_content(rng, w, h, 1), "L")

    def rgb_img(w, h):
        return Image.fromarray(_content(rng, w, h, 3), "RGB")

    save("g_square.png", l_img(8, 8), gray)        # already the model's size: no resize
    save("g_tall.png", l_img(6, 11), gray)
    save("g_wide.png", l_img(8, 4), gray)
    save("g_odd.png", l_img(13, 7), gray)
    save("g_thin.png", l_img(3, 8), gray)
    _exif_jpeg(folder / "g_exif.jpg", l_img(8, 5), 6)    # stored 8×5, upright 5×8
    gray.append(folder / "g_exif.jpg")
    save("g_large.png", l_img(100, 70), gray)

    save("c_square.png", rgb_img(32, 32), rgb)
    save("c_wide.png", rgb_img(45, 20), rgb)
    rgba = _content(rng, 32, 17, 3)
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (17, 1))
    save("c_rgba.png", Image.fromarray(np.dstack([rgba, alpha]), "RGBA"), rgb)
    palette = rgb_img(40, 25).quantize(16)
    save("c_palette.png", palette, rgb, transparency=0)
    save("c_gray.png", l_img(24, 32), rgb)
    _exif_jpeg(folder / "c_exif.jpg", rgb_img(20, 14), 8)  # stored 20×14, upright 14×20
    rgb.append(folder / "c_exif.jpg")
    save("c_tall.png", rgb_img(48, 60), rgb)
    save("c_small.png", rgb_img(16, 9), rgb)
    save("c_large.png", rgb_img(300, 180), rgb)
    large = [folder / "g_large.png", folder / "c_large.png"]
    return {"gray": gray, "rgb": rgb, "large": large}


def import_files(ws, name: str, paths: list[Path]) -> dict[str, int]:
    """Import ``paths`` as dataset ``name`` (cache built at import); {file name: image id}."""
    with DatasetWriter(ws, name, "test:contract") as writer:
        for p in paths:
            writer.add_bytes(p.read_bytes(), original_name=p.name)
        writer.commit()
    with ws.db() as conn:
        rows = conn.execute("SELECT id, original_name FROM images WHERE dataset_id = ?",
                            (get_dataset_id(ws, name),)).fetchall()
    return {r["original_name"]: int(r["id"]) for r in rows}


@pytest.fixture(scope="module")
def contract_workspace(_trained_master, tmp_path_factory):
    """The trained digits workspace, plus an RGB run on shapes and the test files imported
    (each set in full and without its large image)."""
    master, gray_run = _trained_master
    base = tmp_path_factory.mktemp("contract")
    root = base / "ws"
    copy_workspace(master, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGELAB_HOME", str(root))
        ws = open_workspace(root)
        run = create_run(ws, TrainConfig(dataset="shapes", image_size=32, epochs=1,
                                         batch_size=64))
        summary = train_run(ws, run.id)
        assert summary["status"] == "finished", summary
        files = make_files(base / "files")
        ids = {}
        for kind in ("gray", "rgb"):
            ids[kind] = import_files(ws, f"contract-{kind}", files[kind])
            ids[kind + "-small"] = import_files(ws, f"contract-{kind}-small",
                                                [p for p in files[kind] if p not in files["large"]])
    return {"root": root, "ws": ws, "runs": {"gray": gray_run, "rgb": run.id},
            "files": files, "ids": ids, "base": base}


def test_contract_dict_round_trips_and_refuses_what_it_cannot_do():
    pre = Preprocessing(32, 3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    data = json.loads(json.dumps(pre.to_dict()))
    assert data["resize"] == {"rule": "squash", "filter": "bilinear", "reducing_gap": 3.0}
    back = Preprocessing.from_dict(data)
    assert back == pre
    np.testing.assert_array_equal(back.scale, pre.scale)
    np.testing.assert_array_equal(back.shift, pre.shift)
    # the scaling is (x / 255 - mean) / std
    levels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    expected = (levels / 255.0 - np.array(pre.mean)[:, None, None]) / np.array(pre.std)[:, None, None]
    np.testing.assert_allclose(pre.normalise(levels), expected, atol=FLOAT_TOLERANCE)
    assert Preprocessing(8, 1).to_dict()["mean"] == [0.0] and Preprocessing(8, 1).std == (1.0,)
    with pytest.raises(ValueError, match="resize rule"):
        Preprocessing.from_dict({**data, "resize": {"rule": "center-crop"}})
    with pytest.raises(ValueError, match="resize rule"):
        Preprocessing.from_dict({k: v for k, v in data.items() if k != "resize"})
    with pytest.raises(ValueError, match="channels"):
        Preprocessing(8, 2)
    with pytest.raises(ValueError, match="mean and std"):
        Preprocessing(8, 3, mean=(0.5,), std=(0.2,))


def test_reducing_gap_is_part_of_the_rule(tmp_path):
    """Why the bundle must use the app's own resize: dropping ``reducing_gap`` (what the
    bundle's copy did) changes the levels of an image much larger than the model's size."""
    files = make_files(tmp_path)
    for path, pre in zip(files["large"], (Preprocessing(8, 1), Preprocessing(32, 3))):
        img = load_image_file(path).image
        assert max(img.size) > IMPORT_CACHE_MAX_SIDE
        without_gap = Preprocessing(pre.image_size, pre.channels, reducing_gap=None)
        assert not np.array_equal(pre.to_array(img), without_gap.to_array(img))


def _bundle_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMAGELAB_HOME")}
    return env


@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_every_path_gives_the_same_tensors(contract_workspace, kind):
    ctx = contract_workspace
    ws, run_id = ctx["ws"], ctx["runs"][kind]
    lm = load_run_model(ws, run_id)
    pre = lm.preprocessing
    assert pre.channels == (1 if kind == "gray" else 3)
    assert pre.image_size == (8 if kind == "gray" else 32)
    cache_files = ctx["files"][kind]
    all_files = ctx["files"]["gray"] + ctx["files"]["rgb"]
    assert any(max(load_image_file(p).image.size) > IMPORT_CACHE_MAX_SIDE for p in cache_files)

    # The reference: the app's decode, then the contract.
    decoded = [load_image_file(p).image for p in all_files]
    levels = np.stack([pre.to_array(img) for img in decoded])
    assert levels.dtype == np.uint8 and levels.shape == (len(all_files), pre.channels,
                                                         pre.image_size, pre.image_size)
    row = {p.name: k for k, p in enumerate(all_files)}
    cache_rows = np.array([row[p.name] for p in cache_files])

    # 1. The tensor cache: built at import (importer's pixels, the large file decoded),
    #    prebuilt at import (no large file), and rebuilt from the stored files.
    def cache_levels(dataset: str, names: list[str]) -> np.ndarray:
        cache = load_cache(ws, dataset, pre.image_size)
        assert cache.channels == pre.channels and cache.size == pre.image_size
        ids = ctx["ids"][dataset.removeprefix("contract-")]
        position = {int(i): k for k, i in enumerate(cache.image_ids)}
        return np.stack([np.asarray(cache.pixels[position[ids[n]]]) for n in names])

    names = [p.name for p in cache_files]
    np.testing.assert_array_equal(cache_levels(f"contract-{kind}", names), levels[cache_rows])
    large = {p.name for p in ctx["files"]["large"]}
    small = [n for n in names if n not in large]
    small_rows = np.array([row[n] for n in small])
    np.testing.assert_array_equal(cache_levels(f"contract-{kind}-small", small),
                                  levels[small_rows])
    shutil.rmtree(ws.dataset_cache_dir(get_dataset_id(ws, f"contract-{kind}")))
    np.testing.assert_array_equal(cache_levels(f"contract-{kind}", names), levels[cache_rows])

    # 2. LoadedModel.preprocess (batch prediction, Grad-CAM) on the decoded images.
    x_ref = lm.preprocess(decoded)
    assert x_ref.dtype == torch.float32
    np.testing.assert_array_equal(x_ref.numpy(), pre.normalise(levels))
    np.testing.assert_array_equal(x_ref.numpy(), lm.to_tensor(levels).numpy())

    # 3. Evaluation's inputs, read from the cache.
    ids = ctx["ids"][kind]
    image_ids = np.array(sorted(ids[n] for n in names), dtype=np.int64)
    by_id = {ids[n]: row[n] for n in names}
    eval_x = torch.cat([x for _, x in cache_inputs(ws, lm, f"contract-{kind}", image_ids,
                                                   batch_size=3)])
    np.testing.assert_allclose(eval_x.numpy(), x_ref[[by_id[int(i)] for i in image_ids]].numpy(),
                               rtol=0, atol=FLOAT_TOLERANCE)

    # 4. The demo path and the service's decode path: bytes → decode_for_prediction →
    #    single_input, the very input predict_one runs.
    with torch.inference_mode():
        for k, path in enumerate(all_files):
            img = decode_for_prediction(path.read_bytes())
            resized = pre.resize(img)
            assert planar_pixels(resized) == levels[k].tobytes()
            x = single_input(lm, img)
            assert x.shape == (1, pre.channels, pre.image_size, pre.image_size)
            np.testing.assert_allclose(x.numpy(), x_ref[k:k + 1].numpy(), rtol=0,
                                       atol=FLOAT_TOLERANCE)
    with torch.inference_mode():
        ref_logits = lm.model(x_ref).double()
    ref_probs = torch.softmax(ref_logits / lm.temperature, dim=1).numpy()
    for k, img in enumerate(decoded):
        pred = predict_one(lm, img, top_k=len(lm.classes))
        np.testing.assert_allclose(pred.probabilities, ref_probs[k], rtol=0, atol=1e-5)

    # 5. The service, over HTTP, on the files' bytes.
    server = Server(ctx["root"], run_id)
    try:
        for k, path in enumerate(all_files):
            status, answer = server.post_image(path.read_bytes(),
                                               ctype="image/jpeg" if path.suffix == ".jpg"
                                               else "image/png")
            assert status == 200, answer
            for item in answer["top"]:
                assert abs(item["probability"]
                           - ref_probs[k][lm.classes.index(item["class"])]) <= 1e-5
    finally:
        server.stop()

    # 6. The exported bundle, extracted, run as a user would in a fresh subprocess.
    out = ctx["base"] / f"export-{kind}"
    result = export_run(ws, run_id, "onnx", out / "model.onnx")
    folder = out / "bundle"
    with zipfile.ZipFile(result.bundle) as zf:
        zf.extractall(folder)
    for module in (preprocess, decode):
        shipped = folder / Path(module.__file__).name
        assert shipped.read_bytes() == Path(module.__file__).read_bytes()
    recorded = json.loads((folder / "preprocessing.json").read_text())
    assert recorded == json.loads(json.dumps(pre.to_dict()))
    assert Preprocessing.from_dict(recorded) == pre
    env = _bundle_env()
    probe = subprocess.run([sys.executable, "-c",
                            ("import sys, decode, preprocess; "
                             "print(sorted(m for m in ('torch', 'core') if m in sys.modules))")],
                           check=False, cwd=folder, env=env, capture_output=True, text=True,
                           timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stderr
    saved = out / "inputs.npz"
    run = subprocess.run([sys.executable, "predict.py", "--json", "--save-inputs", str(saved),
                          *map(str, all_files)], check=False, cwd=folder, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    dumped = np.load(saved)      # what the model was given: the resized uint8 levels
    np.testing.assert_array_equal(dumped["pixels"], levels.transpose(0, 2, 3, 1))
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in all_files]
    # scaling, temperature and softmax are inside the exported graph: the app's probabilities
    bundle_probs = np.array([[line["probabilities"][c] for c in lm.classes] for line in lines])
    assert np.max(np.abs(bundle_probs - ref_probs)) <= 1e-4
    # And the plain command line users know: path<TAB>class<TAB>probability.
    run = subprocess.run([sys.executable, "predict.py", str(all_files[0])], check=False,
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    path, label, prob = run.stdout.strip().split("\t")
    assert path == str(all_files[0]) and label == lines[0]["class"] and 0 < float(prob) <= 1
