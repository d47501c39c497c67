"""The workspace store: folders, SQLite pragmas, migrations, durability."""

import subprocess
import sys

import pytest

from core.errors import WorkspaceError
from core.store.db import transaction
from core.store.migrations import MIGRATIONS, migrate, schema_version
from core.store.workspace import SUBDIRS, atomic_write_text, open_workspace


def test_open_creates_layout_and_current_schema(tmp_path):
    ws = open_workspace(tmp_path / "new" / "ws")
    for sub in SUBDIRS:
        assert (ws.root / sub).is_dir()
    with ws.db() as conn:
        assert schema_version(conn) == len(MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"datasets", "classes", "images", "actions", "label_events", "runs", "jobs"} <= tables


def test_pragmas_wal_fullsync_busy_timeout_foreign_keys(workspace):
    with workspace.db() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrate_is_idempotent_and_versioned(workspace):
    with workspace.db() as conn:
        assert migrate(conn) == len(MIGRATIONS)
        assert migrate(conn) == len(MIGRATIONS)
        # The schema really is there only once: re-running did not fail or duplicate.
        n = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='images'").fetchone()[0]
        assert n == 1


def test_migration_from_older_version_applies_only_newer_steps(tmp_path, monkeypatch):
    import core.store.migrations as mig
    ws = open_workspace(tmp_path / "ws")
    extra = "CREATE TABLE later_feature (id INTEGER PRIMARY KEY);"
    monkeypatch.setattr(mig, "MIGRATIONS", mig.MIGRATIONS + [extra])
    with ws.db() as conn:
        assert mig.migrate(conn) == len(MIGRATIONS) + 1
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='later_feature'").fetchone()


def test_transaction_rolls_back_on_error(workspace):
    with workspace.db() as conn:
        with pytest.raises(RuntimeError):
            with transaction(conn):
                conn.execute("INSERT INTO datasets(name, source, created_at) VALUES ('x', 's', 0)")
                raise RuntimeError("boom")
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0


def test_committed_write_survives_kill_9(workspace):
    """A child commits, then is SIGKILLed; the row is there afterwards."""
    code = (
        "import os, signal, sys\n"
        "from core.store.workspace import open_workspace\n"
        "ws = open_workspace(sys.argv[1])\n"
        "with ws.write() as c:\n"
        "    c.execute(\"INSERT INTO datasets(name, source, created_at) VALUES ('kept', 's', 0)\")\n"
        "c = ws.connect(); c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO datasets(name, source, created_at) VALUES ('lost', 's', 0)\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(workspace.root)], cwd=str(_repo()))
    assert proc.returncode == -9
    with workspace.db() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM datasets")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert names == ["kept"]


def test_not_a_folder_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        open_workspace(f)
    with pytest.raises(WorkspaceError, match="cannot create workspace"):
        open_workspace(f / "below")


def test_corrupt_database_is_a_clear_error(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "imagelab.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError, match="cannot be opened"):
        open_workspace(root)


def test_resolve_refuses_paths_outside(workspace):
    assert workspace.resolve("images/a.png") == (workspace.root / "images/a.png").resolve()
    with pytest.raises(WorkspaceError, match="outside"):
        workspace.resolve("../escape.txt")
    with pytest.raises(WorkspaceError, match="outside"):
        workspace.resolve("/etc/passwd")


def test_atomic_write_replaces_whole_file(workspace):
    target = workspace.runs_dir / "r" / "status.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]  # no temp left


def test_concurrent_writers_wait_instead_of_failing(workspace):
    """Two processes insert 200 rows each at once; busy_timeout serialises them."""
    code = (
        "import sys\n"
        "from core.store.workspace import open_workspace\n"
        "ws = open_workspace(sys.argv[1])\n"
        "for i in range(200):\n"
        "    with ws.write() as c:\n"
        "        c.execute('INSERT INTO datasets(name, source, created_at) VALUES (?, ?, 0)',"
        " (f'{sys.argv[2]}-{i}', 's'))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(workspace.root), tag],
                              cwd=str(_repo())) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 400


def _repo():
    from tests.conftest import REPO
    return REPO
