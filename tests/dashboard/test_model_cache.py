"""``dashboard.models.loaded_model``: one shared model per checkpoint file and version.

Outside a Streamlit server ``st.cache_resource`` still caches (in memory), so the
cache itself is exercised here on a real trained run.
"""

from __future__ import annotations

import json
import os

import torch

from dashboard.models import _load, loaded_model


def _resave(path, change) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    change(ckpt["model"])
    before = path.stat().st_mtime
    torch.save(ckpt, path)
    if path.stat().st_mtime == before:           # a coarse clock: make the new version visible
        os.utime(path, (before + 1, before + 1))


def test_same_checkpoint_same_object_and_a_resaved_one_is_reloaded(trained_workspace):
    ws, run_id = trained_workspace
    _load.clear()
    first = loaded_model(ws, run_id)
    assert loaded_model(ws, run_id) is first
    folder = ws.runs_dir / run_id
    path = folder / "best.pt"
    assert first.checkpoint == path
    name, weights = next((n, p) for n, p in first.model.state_dict().items()
                         if p.is_floating_point() and p.ndim > 1)
    kept = weights.clone()

    def double(state):
        state[name] = state[name] * 2
    _resave(path, double)
    second = loaded_model(ws, run_id)
    assert second is not first
    torch.testing.assert_close(second.model.state_dict()[name], kept * 2)
    torch.testing.assert_close(first.model.state_dict()[name], kept)   # the old one untouched
    assert loaded_model(ws, run_id) is second


def test_a_new_calibration_reloads_with_its_temperature(trained_workspace):
    ws, run_id = trained_workspace
    _load.clear()
    first = loaded_model(ws, run_id)
    cal = ws.runs_dir / run_id / "calibration.json"
    stored = json.loads(cal.read_text()) if cal.exists() else {
        "checkpoint_mtime": first.checkpoint.stat().st_mtime}
    stored["temperature"] = first.temperature + 0.75
    cal.write_text(json.dumps(stored))
    second = loaded_model(ws, run_id)
    assert second is not first
    assert abs(second.temperature - (first.temperature + 0.75)) < 1e-9
    assert loaded_model(ws, run_id) is second
