"""Shared fixtures: real workspaces on disk, filled with real sample images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.data.samples import import_sample
from core.store.workspace import open_workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace in a temp folder, also set as $IMAGELAB_HOME."""
    root = tmp_path / "ws"
    monkeypatch.setenv("IMAGELAB_HOME", str(root))
    return open_workspace(root)


@pytest.fixture(scope="session")
def _samples_master(tmp_path_factory):
    """Built once per session: digits + mnist-5k + a small shapes set."""
    root = tmp_path_factory.mktemp("samples") / "ws"
    ws = open_workspace(root)
    import_sample(ws, "sample:digits")
    import_sample(ws, "sample:mnist-5k")
    import_sample(ws, "sample:shapes", count=600, size=32)
    return root


@pytest.fixture
def sample_workspace(_samples_master, tmp_path, monkeypatch):
    """A private copy of the sample workspace, set as $IMAGELAB_HOME."""
    root = tmp_path / "ws"
    shutil.copytree(_samples_master, root)
    monkeypatch.setenv("IMAGELAB_HOME", str(root))
    return open_workspace(root)


def python_env(home: Path) -> dict:
    env = dict(os.environ)
    env["IMAGELAB_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="session")
def _trained_master(_samples_master, tmp_path_factory):
    """The sample workspace plus one small finished digits run (trained for real)."""
    from core.training.config import TrainConfig
    from core.training.run import train_run
    from core.training.runs import create_run
    root = tmp_path_factory.mktemp("trained") / "ws"
    shutil.copytree(_samples_master, root)
    ws = open_workspace(root)
    run = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=4, batch_size=64))
    summary = train_run(ws, run.id)
    assert summary["status"] == "finished", summary
    return root, run.id


@pytest.fixture
def trained_workspace(_trained_master, tmp_path, monkeypatch):
    """A private copy of the trained workspace; returns (workspace, run id)."""
    master, run_id = _trained_master
    root = tmp_path / "ws"
    shutil.copytree(master, root)
    monkeypatch.setenv("IMAGELAB_HOME", str(root))
    return open_workspace(root), run_id
