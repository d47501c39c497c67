"""Exports checked from files (#19): the extracted bundle's predict.py against the app.

A real digits run (``trained_workspace``) is exported; the test itself feeds the same
stored files of the validation split through the app's batch prediction and through the
bundle's ``predict.py`` in a fresh subprocess, and asserts the parity figures. int8
exports are made for real with onnxruntime's quantisation; their refusal and the
user's override are checked through the CLI.
"""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from core.cli.main import main as cli_main
from core.errors import ImageLabError
from core.inference import quantize
from core.inference.batch import predict_paths
from core.inference.export_parity import bundle_env, split_files
from core.inference.predictor import load_run_model
from core.inference.run_export import export_run, read_checks


def test_bundle_from_files_agrees_with_the_app(trained_workspace, tmp_path):
    ws, run_id = trained_workspace
    result = export_run(ws, run_id, "onnx")
    assert result.path == str(ws.root / "exports" / run_id / "model.onnx")
    split, paths, labels = split_files(ws, "digits", "val")
    assert split == "val" and len(paths) > 100
    p = result.parity
    assert p["images"] == len(paths) and p["split"] == "val" and p["unreadable"] == 0
    assert p["top1_agreement"] == 1.0 and p["max_prob_diff"] <= 1e-4
    assert result.accuracy == p["accuracy_export"] == p["accuracy_app"] > 0.5

    # The same files, by hand: the app's predictions and the bundle run as a user runs it.
    lm = load_run_model(ws, run_id)
    app = np.array([[r[f"p_{c}"] for c in lm.classes] for r in predict_paths(lm, paths)])
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(result.bundle) as zf:
        zf.extractall(folder)
    run = subprocess.run([sys.executable, "predict.py", "--json", *map(str, paths)],
                         cwd=folder, env=bundle_env(), capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths]
    bundle = np.array([[line["probabilities"][c] for c in lm.classes] for line in lines])
    assert np.mean(bundle.argmax(1) == app.argmax(1)) == 1.0
    assert np.max(np.abs(bundle - app)) <= 1e-4
    assert np.mean(app.argmax(1) == [lm.classes.index(c) for c in labels]) == p["accuracy_app"]
    # The plain command line: path<TAB>class<TAB>probability, one line per image.
    run = subprocess.run([sys.executable, "predict.py", *map(str, paths[:3])], cwd=folder,
                         env=bundle_env(), capture_output=True, text=True, timeout=300)
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in paths[:3]]
    assert [r[1] for r in rows] == [lines[k]["class"] for k in range(3)]

    # The figures are recorded: in export_check.json beside it, in the bundle and its card.
    check = read_checks(ws, run_id)["onnx-fp32"]
    assert check["kept"] and check["parity"] == p and check["latency"]["b32"]["p50_ms"] > 0
    assert json.loads((folder / "export_check.json").read_text())["parity"] == p
    assert f"top-1 agreement {100 * p['top1_agreement']:.2f}%" in (folder / "README.md").read_text()


def test_fp32_export_that_fails_from_files_is_refused(trained_workspace):
    ws, run_id = trained_workspace
    # No fp32 runtime reproduces PyTorch to the last bit: a tolerance of 0 must refuse it.
    with pytest.raises(ImageLabError, match=r"refused: from files \(\d+ images of the val split.*"
                                            r"agrees with the app on 100.00%"):
        export_run(ws, run_id, "pt2", tolerance=0.0)
    folder = ws.root / "exports" / run_id
    assert not (folder / "model.pt2").exists() and not (folder / "model-bundle.zip").exists()
    check = read_checks(ws, run_id)["pt2-fp32"]
    assert check["kept"] is False and check["parity"]["max_prob_diff"] > 0


def test_int8_is_measured_refused_and_overridden_through_the_cli(trained_workspace, monkeypatch,
                                                                 capsys):
    ws, run_id = trained_workspace
    # Limits no quantised model can meet (no accuracy gain, every answer the same and more):
    monkeypatch.setattr(quantize, "MAX_ACCURACY_DROP", -1.0)
    argv = ["export", run_id, "--precision", "int8", "--home", str(ws.root), "--json"]
    assert cli_main(argv) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error.startswith("int8 export refused") and "dynamic: accuracy" in error \
        and "static: accuracy" in error and "points of validation accuracy" in error
    target = ws.root / "exports" / run_id / "model-int8.onnx"
    assert not target.exists() and read_checks(ws, run_id)["onnx-int8"]["kept"] is False

    assert cli_main(argv + ["--accept-int8-loss"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert target.exists() and res["path"] == str(target)
    check = read_checks(ws, run_id)["onnx-int8"]
    assert check["kept"] and check["override"] and check["refusal"]
    assert check["quantization"] in ("dynamic", "static")
    variants = check["int8"]["variants"]
    assert set(variants) == {"dynamic", "static"}
    fp32_size = check["int8"]["fp32_size_bytes"]
    for v in variants.values():
        assert 0 < v["size_bytes"] < fp32_size          # int8 weights: a smaller file
        assert v["latency"]["b1"]["p50_ms"] > 0 and v["latency"]["b32"]["p95_ms"] > 0
        assert 0.5 < v["top1_agreement"] <= 1 and 0 < v["accuracy"] <= 1
    assert check["parity"]["images"] > 100       # the int8 bundle also ran from files
