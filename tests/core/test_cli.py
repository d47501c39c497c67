"""``python -m core`` as a user runs it: real subprocesses, JSON on stdout."""

import json
import subprocess
import sys

from tests.conftest import REPO, python_env


def run_cli(home, *args, env=None):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True,
                          text=True, env=env or python_env(home), timeout=300)


def test_help_explains_itself(tmp_path):
    out = run_cli(tmp_path, "--help")
    assert out.returncode == 0
    assert "datasets" in out.stdout and "workspace" in out.stdout
    out = run_cli(tmp_path, "datasets", "import", "--help")
    assert "sample:digits" in out.stdout and "--name" in out.stdout


def test_building_the_parser_loads_no_torch(tmp_path):
    """Every command's parser is built before any command runs, so one heavy import in a
    parser module taxes every command's start (it once made ``datasets import`` take 5 s
    where its refusal should take 0.2 s). Handlers that need torch are imported by name."""
    code = ("import sys; from core.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'faiss', 'umap', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=python_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_datasets_list_json(sample_workspace):
    out = run_cli(sample_workspace.root, "datasets", "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # exactly one JSON document
    by_name = {d["name"]: d for d in data}
    assert set(by_name) == {"digits", "mnist-5k", "shapes"}
    assert by_name["digits"]["num_images"] == 1797
    assert by_name["mnist-5k"]["classes"] == [str(i) for i in range(10)]


def test_datasets_info_json_counts_per_class_and_split(sample_workspace):
    out = run_cli(sample_workspace.root, "datasets", "info", "shapes", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["num_images"] == 600
    assert sum(info["splits"].values()) == 600
    assert {r["class"] for r in info["per_class"]} == {"circle", "square", "triangle", "star",
                                                        "hexagon", "cross"}
    assert all(r["train"] + r["val"] + r["test"] == r["total"] == 100 for r in info["per_class"])


def test_import_sample_json_keeps_progress_off_stdout(tmp_path):
    home = tmp_path / "ws"
    out = run_cli(home, "datasets", "import", "sample:shapes", "--name", "s", "--count", "1200",
                  "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["name"] == "s" and report["num_images"] == 1200 and report["skipped"] == []
    assert "images written" in out.stderr  # progress went to stderr


def test_human_output_is_a_table(sample_workspace):
    out = run_cli(sample_workspace.root, "datasets", "list")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].split()[:2] == ["name", "num_images"]
    assert "mnist-5k" in out.stdout


def test_unknown_dataset_is_a_clear_error(sample_workspace):
    out = run_cli(sample_workspace.root, "datasets", "info", "nope")
    assert out.returncode == 2
    assert "unknown dataset 'nope'" in out.stderr and "digits" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli(sample_workspace.root, "datasets", "info", "nope", "--json")
    assert out.returncode == 2 and "unknown dataset" in json.loads(out.stdout)["error"]


def test_unknown_sample_is_a_clear_error(tmp_path):
    out = run_cli(tmp_path / "ws", "datasets", "import", "sample:imagenet")
    assert out.returncode == 2
    assert "unknown sample 'sample:imagenet'" in out.stderr and "Traceback" not in out.stderr


def test_unwritable_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for home in (blocker, blocker / "ws"):
        out = run_cli(home, "datasets", "list", "--json")
        assert out.returncode == 2
        assert "IMAGELAB_HOME" in out.stderr and "Traceback" not in out.stderr
        assert "error" in json.loads(out.stdout)


def test_samples_ensure_then_list(tmp_path):
    home = tmp_path / "ws"
    out = run_cli(home, "samples", "ensure", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["datasets"] == ["digits", "mnist-5k", "shapes"]
    out = run_cli(home, "samples", "ensure", "--json")
    assert json.loads(out.stdout)["prepared"] == []




def test_import_finding_no_image_exits_non_zero_and_leaves_no_dataset(tmp_path):
    src = tmp_path / "notes" / "cat"
    src.mkdir(parents=True)
    (src / "readme.txt").write_text("not an image")
    out = run_cli(tmp_path / "ws", "datasets", "import", str(src.parent), "--name", "notes")
    assert out.returncode != 0
    assert "no images found" in out.stderr and "Traceback" not in out.stderr
    listed = run_cli(tmp_path / "ws", "datasets", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
