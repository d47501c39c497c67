"""Issue 17, "How to prove it": every kind of the hostile-input corpus
(``tests/core/data/hostile_corpus.py``) imported through the CLI, in this process
(``core.cli.main.main``, as ``python -m core datasets import SOURCE --json`` runs it).

For each kind: no traceback (an exception other than the CLI's own exit fails the test);
the exit status and the JSON answer are the expected ones; nothing is written outside the
workspace (every entry of the test's folder is compared before and after, and no file there
is newer than a marker made just before the import, ``find -newer``-style); and no input
file is neither imported nor reported (files = added + report lines + files under a folder
the notes name). A refused input leaves no dataset and no image behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from core.cli.main import main
from core.data.net import ALLOW_ENV
from tests.core.data.hostile_corpus import KINDS, Kind, write_corpus


def _missing(need: str) -> str | None:
    """Why this machine cannot build a kind that ``need``s something, or None."""
    if need == "fifo" and not hasattr(os, "mkfifo"):
        return "no FIFOs on this system"
    if need == "socket" and not hasattr(socket, "AF_UNIX"):
        return "no Unix sockets on this system"
    if need == "/dev/zero" and not os.path.exists("/dev/zero"):
        return "no /dev/zero here"
    if need == "non-root" and hasattr(os, "geteuid") and os.geteuid() == 0:
        return "running as root: a chmod 000 file is still readable, so this kind proves nothing"
    return None


def _entries(root: Path, skip: Path) -> dict[str, tuple]:
    """Every entry under ``root`` but ``skip`` (links not followed): relative path →
    (type, size, mtime in ns). A stack, not recursion: some kinds are hundreds of folders deep;
    a folder that cannot be listed by name (a path over 4096 bytes) is left out."""
    found: dict[str, tuple] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                listed = list(it)
        except OSError:
            continue
        for entry in listed:
            path = Path(entry.path)
            if path == skip:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:         # its path is over 4096 bytes: no one can name it
                continue
            found[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size,
                                                 st.st_mtime_ns)
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
    return found


def _remove_deep(root: Path) -> None:
    """Remove ``root``, however deep: ``shutil.rmtree`` recurses once per level, so chains
    are first cut (every folder 100 levels below the top of its piece is moved up to
    ``root``), then ``rmtree`` removes the pieces."""
    stack, cuts = [(root, 0)], 0
    while stack:
        folder, depth = stack.pop()
        if depth >= 100:
            cuts += 1
            os.rename(folder, root / f".cut-{cuts}")
            folder, depth = root / f".cut-{cuts}", 1
        try:
            with os.scandir(folder) as it:
                stack += [(Path(e.path), depth + 1) for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    shutil.rmtree(root, ignore_errors=True)


def _stack_depth() -> int:
    """The number of frames on this thread's stack."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def _run_cli(argv: list[str]) -> int:
    """``python -m core ARGV`` in this process; the exit status (argparse exits itself)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def _match(kind: Kind, skipped: list[dict]) -> list[str]:
    """The expected report lines that no (distinct) actual line matches."""
    free = list(skipped)
    unmatched = []
    for path_part, reason_part in kind.reasons:
        line = next((s for s in free if path_part in s["path"] and reason_part in s["reason"]),
                    None)
        if line is None:
            unmatched.append(f"{path_part!r}: {reason_part!r}")
        else:
            free.remove(line)
    return unmatched


def _dataset_state(ws: Path) -> tuple[int, int]:
    """(datasets, images) in the workspace database (0, 0 if it has none)."""
    db = ws / "imagelab.db"
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])


def _files_under(folder: Path) -> list[str]:
    return [p for p, (kind, _, _) in _entries(folder, folder / "-none-").items()
            if kind != stat.S_IFDIR] if folder.exists() else []


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")      # Pillow's, for image_exif_garbage
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_hostile_input(kind, tmp_path, monkeypatch, capsys, serve_routes):
    why = _missing(kind.needs)
    if why:
        pytest.skip(why)
    root = tmp_path
    ws = root / "ws"
    for name in ("input", "home", "cwd", "systmp"):
        (root / name).mkdir()
    # everything a run might write by default points inside the test's folder, where the
    # check below sees it: the workspace, $HOME, the current folder, temporary files
    monkeypatch.setenv("IMAGELAB_HOME", str(ws))
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("TMPDIR", str(root / "systmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(root / "systmp"))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv("IMAGELAB_DATA_ROOTS", raising=False)
    monkeypatch.chdir(root / "cwd")
    try:
        src = kind.build(root / "input")
        if src.routes is not None:      # served from 127.0.0.1, the only address tests reach
            src = replace(src, source=src.source.replace("{base}", serve_routes(src.routes)))
        marker = root / "marker"
        marker.touch()
        before = _entries(root, ws)
        name = () if "--name" in src.args else ("--name", "corpus")
        limit = sys.getrecursionlimit()
        if kind.frames:                 # a deep tree: a lowered limit stands for a deeper one
            sys.setrecursionlimit(_stack_depth() + kind.frames)
        try:
            code = _run_cli(["datasets", "import", src.source, "--json", *name, *src.args])
        finally:
            sys.setrecursionlimit(limit)
        out, err = capsys.readouterr()
        after = _entries(root, ws)

        assert "Traceback" not in out + err, err
        for secret in kind.forbid:
            assert secret not in out + err
        # nothing written outside the workspace: no entry new, changed, gone or newer
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        assert changed == [], f"written outside the workspace: {changed}"
        newer = [p for p, (_, _, mtime) in after.items() if mtime > marker.stat().st_mtime_ns]
        assert newer == [], f"newer than the marker, outside the workspace: {newer}"
        assert _files_under(ws / "tmp") == [], "extraction left files in the workspace's tmp/"

        answer = json.loads(out)       # stdout is exactly one JSON document
        assert code == kind.code, answer
        if kind.code != 0:
            assert kind.error in answer["error"], answer["error"]
            assert _dataset_state(ws) == (0, 0)
            assert _files_under(ws / "images") == []
            if "no images found" in answer["error"] and src.files is not None:
                assert f"{src.files} files skipped" in answer["error"]
            return
        skipped = answer["skipped"]
        assert answer["added"] == kind.added, skipped
        assert _dataset_state(ws) == (1, kind.added)
        assert _match(kind, skipped) == [], skipped
        assert len(skipped) == len(kind.reasons), skipped      # and no other line
        for note in kind.notes:
            assert any(note in n for n in answer["notes"]), answer["notes"]
        if kind.classes is not None:
            assert sorted(answer["classes"]) == sorted(kind.classes)
        if src.files is not None:       # each input file imported, reported or noted
            accounted = answer["added"] + len(skipped) + kind.ignored
            # one line may stand for the rest of an archive that could not be read on
            if any(s["path"].endswith(("(rest)", " files)")) for s in skipped):
                assert accounted <= src.files, skipped
            else:
                assert accounted == src.files, skipped
    finally:
        _remove_deep(root / "input")


def test_the_corpus_has_at_least_60_distinct_kinds():
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names) >= 60
    outcomes = {(k.code, bool(k.reasons or k.notes)) for k in KINDS}
    assert outcomes == {(0, False), (0, True), (2, False)}   # imported, reported, refused


def test_the_corpus_script_writes_the_kinds(tmp_path):
    sample = KINDS[::9]                 # every kind is built by the test above; these again here
    rows = write_corpus(tmp_path / "corpus", sample)
    try:
        assert [r["kind"] for r in rows] == [k.name for k in sample]
        assert json.loads((tmp_path / "corpus" / "kinds.json").read_text()) == rows
        assert all(re.match(r"^\w+$", r["kind"]) and "source" in r for r in rows)
    finally:
        _remove_deep(tmp_path / "corpus")
