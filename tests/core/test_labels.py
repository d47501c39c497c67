"""core/labels on real sample workspaces: classes, relabel, conflicts, history, undo, revert, io."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from core.data.catalog import dataset_info
from core.errors import ImageLabError
from core.inference.batch import rows_to_csv
from core.labels import LabelConflict, classes, history, relabel
from core.labels import io as IO
from core.labels.selection import ImageFilter, count_matching, find_images, matching_labels, queue_neighbour
from tests.conftest import REPO, private_workspace, python_env


@pytest.fixture(scope="module")
def _small_master(tmp_path_factory):
    """digits + a 600-image shapes set (no mnist-5k: copying it per test is slow)."""
    from core.data.samples import import_sample
    from core.store.workspace import open_workspace
    root = tmp_path_factory.mktemp("labels") / "ws"
    ws = open_workspace(root)
    import_sample(ws, "sample:digits")
    import_sample(ws, "sample:shapes", count=600, size=32)
    return root


@pytest.fixture
def sample_workspace(_small_master, tmp_path, monkeypatch):
    return private_workspace(_small_master, tmp_path, monkeypatch)


def labels_of(ws, ids):
    with ws.db() as conn:
        rows = conn.execute(
            f"SELECT i.id, c.name FROM images i LEFT JOIN classes c ON c.id = i.class_id "
            f"WHERE i.id IN ({','.join(map(str, ids))})").fetchall()
    return {r[0]: r[1] for r in rows}


def test_bulk_relabel_is_one_action_and_undo_restores(sample_workspace):
    ws = sample_workspace
    sel = matching_labels(ws, "digits", ImageFilter(label="3", split="train"))
    assert len(sel) > 50 and set(sel.values()) == {"3"}
    before = dataset_info(ws, "digits")
    res = relabel.set_label(ws, "digits", sel, "8", user="alice")
    assert res.changed == len(sel) and res.kind == "bulk_relabel"
    assert set(labels_of(ws, sel).values()) == {"8"}
    assert res.label_version == dataset_info(ws, "digits").label_version > before.label_version
    last = history.list_actions(ws, "digits")[0]
    assert (last.kind, last.user, last.label_events) == ("bulk_relabel", "alice", len(sel))
    undo = history.undo_last_action(ws, "digits", user="bob")
    assert undo.changed == len(sel)
    assert set(labels_of(ws, sel).values()) == {"3"}
    assert history.list_actions(ws, "digits")[1].undone_by == undo.action_id
    after = dataset_info(ws, "digits")
    assert after.per_class == before.per_class
    with pytest.raises(ImageLabError, match="nothing to undo"):
        history.undo_last_action(ws, "digits")


def test_stale_expected_label_is_a_conflict_and_writes_nothing(sample_workspace):
    ws = sample_workspace
    imgs = find_images(ws, "digits", ImageFilter(label="1"), limit=3)
    seen = {i.id: i.label for i in imgs}
    # "Tab A" saves first.
    relabel.relabel_image(ws, "digits", imgs[1].id, "7", expected="1")
    n_actions = len(history.list_actions(ws, "digits"))
    # "Tab B" still believes image 1 is a "1".
    with pytest.raises(LabelConflict) as err:
        relabel.set_label(ws, "digits", seen, "2")
    assert err.value.conflicts == [(imgs[1].id, "1", "7")]
    assert "'7'" in str(err.value) and str(imgs[1].id) in str(err.value)
    assert labels_of(ws, seen) == {imgs[0].id: "1", imgs[1].id: "7", imgs[2].id: "1"}
    assert len(history.list_actions(ws, "digits")) == n_actions


def test_class_add_rename_describe_merge_delete_and_undo(sample_workspace):
    ws = sample_workspace
    classes.add_class(ws, "shapes", "blob", "a shape with no name")
    assert [c.name for c in classes.list_classes(ws, "shapes")][-1] == "blob"
    with pytest.raises(ImageLabError, match="already exists"):
        classes.add_class(ws, "shapes", "blob")
    classes.rename_class(ws, "shapes", "blob", "<script>alert(1)</script>")
    classes.set_description(ws, "shapes", "circle", "round, no corners")
    assert classes.class_descriptions(ws, "shapes")["circle"] == "round, no corners"
    counts = {c.name: c.images for c in classes.list_classes(ws, "shapes")}
    res = classes.merge_classes(ws, "shapes", "hexagon", "circle")
    assert res.changed == counts["hexagon"]
    after = {c.name: c.images for c in classes.list_classes(ws, "shapes")}
    assert "hexagon" not in after and after["circle"] == counts["circle"] + counts["hexagon"]
    history.undo_last_action(ws, "shapes")
    assert {c.name: c.images for c in classes.list_classes(ws, "shapes")} == counts
    res = classes.delete_class(ws, "shapes", "square")
    assert res.changed == counts["square"]
    assert count_matching(ws, "shapes", ImageFilter(label="")) == counts["square"]
    classes.delete_class(ws, "shapes", "triangle", reassign_to="circle")
    history.undo_last_action(ws, "shapes")   # triangle back
    history.undo_last_action(ws, "shapes")   # square back, with its images
    assert {c.name: c.images for c in classes.list_classes(ws, "shapes")} == counts
    history.undo_last_action(ws, "shapes")   # the description
    history.undo_last_action(ws, "shapes")   # the rename
    assert "blob" in classes.class_descriptions(ws, "shapes")
    history.undo_last_action(ws, "shapes")   # the add
    assert "blob" not in classes.class_descriptions(ws, "shapes")


def test_split_moves_and_exclusion_are_undoable(sample_workspace):
    ws = sample_workspace
    ids = list(matching_labels(ws, "shapes", ImageFilter(split="train")))[:20]
    relabel.move_to_split(ws, "shapes", ids, "test")
    assert count_matching(ws, "shapes", ImageFilter(split="test")) >= 20
    relabel.set_excluded(ws, "shapes", ids[:5])
    assert count_matching(ws, "shapes", ImageFilter(excluded=True)) == 5
    history.undo_last_action(ws, "shapes")
    assert count_matching(ws, "shapes", ImageFilter(excluded=True)) == 0
    history.undo_last_action(ws, "shapes")
    with ws.db() as conn:
        splits = {r[0] for r in conn.execute(
            f"SELECT split FROM images WHERE id IN ({','.join(map(str, ids))})")}
    assert splits == {"train"}
    with pytest.raises(ImageLabError, match="unknown split"):
        relabel.move_to_split(ws, "shapes", ids, "holdout")


def test_history_of_image_class_and_dataset(sample_workspace):
    ws = sample_workspace
    img = find_images(ws, "digits", ImageFilter(label="5"), limit=1)[0]
    relabel.relabel_image(ws, "digits", img.id, "6", expected="5", user="carol")
    relabel.relabel_image(ws, "digits", img.id, None, expected="6", user="dave")
    ev = history.label_history(ws, "digits", image_id=img.id)
    assert [(e.old_label, e.new_label, e.user) for e in ev] == [
        ("6", None, "dave"), ("5", "6", "carol"), (None, "5", "")]
    assert ev[0].version > ev[1].version and ev[2].kind == "import"
    by_class = history.label_history(ws, "digits", class_name="6", limit=5)
    assert by_class[0].image_id == img.id
    assert [a.kind for a in history.list_actions(ws, "digits")][:3] == ["relabel", "relabel", "import"]


def test_labels_at_version_and_revert(sample_workspace):
    ws = sample_workspace
    v0 = dataset_info(ws, "digits").label_version
    at_v0 = history.labels_at_version(ws, "digits", v0)
    sel = matching_labels(ws, "digits", ImageFilter(label="2"))
    relabel.set_label(ws, "digits", sel, "9")
    v1 = dataset_info(ws, "digits").label_version
    classes.merge_classes(ws, "digits", "4", "0")
    assert history.labels_at_version(ws, "digits", v1) == {**at_v0, **{i: "9" for i in sel}}
    res = history.revert_to_version(ws, "digits", v0)
    assert res.changed == len(sel) + sum(1 for v in at_v0.values() if v == "4")
    now = {i: lab for i, lab in history.labels_at_version(
        ws, "digits", dataset_info(ws, "digits").label_version).items()}
    assert now == at_v0
    assert "4" in dataset_info(ws, "digits").classes   # the merged class came back
    with pytest.raises(ImageLabError, match="does not exist"):
        history.revert_to_version(ws, "digits", 10**9)
    # a revert is itself one undoable action
    history.undo_last_action(ws, "digits")
    assert set(labels_of(ws, list(sel)[:10]).values()) == {"9"}


def test_queue_next_and_previous(sample_workspace):
    ws = sample_workspace
    sel = dict(list(matching_labels(ws, "shapes", ImageFilter()).items())[:6])
    relabel.set_label(ws, "shapes", sel, None)
    ids = sorted(sel)
    first = queue_neighbour(ws, "shapes", 0, forward=True)
    assert first == ids[0]
    assert queue_neighbour(ws, "shapes", ids[0], forward=True) == ids[1]
    relabel.relabel_image(ws, "shapes", ids[1], "circle", expected=None)
    assert queue_neighbour(ws, "shapes", ids[0], forward=True) == ids[2]
    assert queue_neighbour(ws, "shapes", ids[2], forward=False) == ids[0]
    assert queue_neighbour(ws, "shapes", ids[2], forward=False, also={ids[1]}) == ids[1]


def test_csv_round_trip_changes_exactly_the_edited_rows(sample_workspace, tmp_path):
    ws = sample_workspace
    out = tmp_path / "labels.csv"
    assert IO.export_labels(ws, "shapes", out) == 600
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "label", "split"]
    edited = {2: "square" if rows[2]["label"] != "square" else "circle", 10: "", 33: "blob"}
    for k, lab in edited.items():
        assert rows[k]["label"] != lab
        rows[k]["label"] = lab
    rows[40]["split"] = "val" if rows[40]["split"] != "val" else "test"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    before = {r["path"]: r for r in IO.label_rows(ws, "shapes")}
    res = IO.import_labels(ws, "shapes", out, user="erin")
    assert (res.changed_labels, res.changed_splits, res.new_classes) == (3, 1, ["blob"])
    after = {r["path"]: r for r in IO.label_rows(ws, "shapes")}
    diff = {p for p in after if after[p] != before[p]}
    assert diff == {rows[k]["path"] for k in (2, 10, 33, 40)}
    assert after[rows[10]["path"]]["label"] == ""
    assert history.list_actions(ws, "shapes")[0].kind == "import_labels"
    again = IO.import_labels(ws, "shapes", out)
    assert again.action_id is None and again.changed_labels == 0
    history.undo_last_action(ws, "shapes")
    assert {r["path"]: r for r in IO.label_rows(ws, "shapes")} == before
    assert "blob" not in dataset_info(ws, "shapes").classes


def test_json_export_import_and_bad_files(sample_workspace, tmp_path):
    ws = sample_workspace
    out = tmp_path / "l.json"
    IO.export_labels(ws, "shapes", out)
    doc = json.loads(out.read_text())
    doc["labels"][0]["label"] = "triangle" if doc["labels"][0]["label"] != "triangle" else "circle"
    out.write_text(json.dumps(doc))
    assert IO.import_labels(ws, "shapes", out).changed_labels == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nnot/a/real/path.png,circle\n")
    v = dataset_info(ws, "shapes").label_version
    with pytest.raises(ImageLabError, match="not in 'shapes'"):
        IO.import_labels(ws, "shapes", bad)
    bad.write_text("file,class\nx,y\n")
    with pytest.raises(ImageLabError, match="header"):
        IO.import_labels(ws, "shapes", bad)
    assert dataset_info(ws, "shapes").label_version == v


def test_imagefolder_and_zip_export(sample_workspace, tmp_path):
    ws = sample_workspace
    classes.rename_class(ws, "shapes", "circle", "../evil/<b>")
    first = find_images(ws, "shapes", limit=2)
    relabel.set_label(ws, "shapes", {first[0].id: first[0].label}, None)
    relabel.set_excluded(ws, "shapes", [first[1].id])
    res = IO.export_imagefolder(ws, "shapes", tmp_path / "tree")
    assert (res.images, res.skipped_unlabelled, res.skipped_excluded) == (598, 1, 1)
    files = [p for p in (tmp_path / "tree").rglob("*.png")]
    assert len(files) == 598
    assert all(p.resolve().is_relative_to((tmp_path / "tree").resolve()) for p in files)
    assert {p.parent.parent.name for p in files} == {"train", "val", "test"}
    assert "_evil_b_" in {p.parent.name for p in files}
    Image.open(files[0]).load()   # real image bytes
    z = IO.export_zip(ws, "shapes", tmp_path / "shapes.zip")
    with zipfile.ZipFile(tmp_path / "shapes.zip") as zf:
        names = zf.namelist()
        labels = zf.read("shapes/labels.csv").decode()
    assert z.images == 598 and sum(n.endswith(".png") for n in names) == 598
    assert "../evil/<b>" in labels
    with pytest.raises(ImageLabError, match="not empty"):
        IO.export_imagefolder(ws, "shapes", tmp_path / "tree")


def run_cli(home, *args):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=python_env(home),
                          capture_output=True, text=True, timeout=120)


def test_cli_round_trip_history_and_undo(sample_workspace, tmp_path):
    home = sample_workspace.root
    out = tmp_path / "digits.csv"
    r = run_cli(home, "labels", "export", "digits", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 1797
    rows = list(csv.DictReader(out.open()))
    rows[5]["label"], rows[6]["label"] = "0", "1"
    changed = sum(1 for k in (5, 6) if rows[k]["label"] != dict(
        zip(["path", "label", "split"], next(csv.reader([out.read_text().splitlines()[k + 1]]))))["label"])
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    r = run_cli(home, "labels", "import", "digits", str(out), "--json", "--user", "frank")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed_labels"] == changed == 2
    r = run_cli(home, "labels", "history", "digits", "--json")
    actions = json.loads(r.stdout)["actions"]
    assert actions[0]["kind"] == "import_labels" and actions[0]["user"] == "frank"
    assert actions[0]["label_events"] == 2
    r = run_cli(home, "labels", "history", "digits")
    assert "import_labels" in r.stdout and "frank" in r.stdout
    r = run_cli(home, "labels", "undo", "digits", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["changed"] == 2
    r = run_cli(home, "labels", "undo", "digits", "--json")
    assert r.returncode == 2 and json.loads(r.stdout) == {"error": "nothing to undo in 'digits'"}
    r = run_cli(home, "labels", "history", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown dataset" in r.stderr


def test_database_stays_consistent(sample_workspace):
    ws = sample_workspace
    sel = matching_labels(ws, "digits", ImageFilter(label="7"))
    relabel.set_label(ws, "digits", sel, "1")
    history.undo_last_action(ws, "digits")
    with sqlite3.connect(ws.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # every image's label equals the new label of its last event
        bad = conn.execute(
            "SELECT COUNT(*) FROM images i JOIN label_events e ON e.id = "
            "(SELECT MAX(id) FROM label_events WHERE image_id = i.id) "
            "WHERE i.class_id IS NOT e.new_class_id").fetchone()[0]
    assert bad == 0


def test_csv_exports_escape_formulas_and_import_back_unchanged(sample_workspace, tmp_path):
    ws = sample_workspace
    formula = '=HYPERLINK("http://example.invalid","click")'
    classes.rename_class(ws, "shapes", "circle", formula)
    out = tmp_path / "labels.csv"
    IO.export_labels(ws, "shapes", out)
    cells = [r["label"] for r in csv.DictReader(out.open(newline=""))]
    assert "'" + formula in cells and formula not in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    assert IO.import_labels(ws, "shapes", out).changed_labels == 0  # the escape round-trips
    assert formula in dataset_info(ws, "shapes").classes
    for value in ("-1", "@x", "'=x", "''+y", "plain", "'quoted", ""):
        assert IO.csv_uncell(IO.csv_cell(value)) == value
    assert IO.csv_cell("'=x") == "''=x" and IO.csv_cell("'quoted") == "'quoted"
    text = rows_to_csv([{"path": "=cmd|' /C calc'!A0", "prediction": "+1", "confidence": 0.5,
                         "error": "", "p_+1": 0.5}], ["+1"])
    row = next(csv.DictReader(text.splitlines()))
    assert row["path"].startswith("'=") and row["prediction"] == "'+1" and row["p_+1"] == "0.5"
