"""Versioned schema migrations, tracked in ``PRAGMA user_version``.

Each migration is applied once, in order, inside one transaction. To change the
schema, append a new entry; never edit one that has shipped.

The schema is designed for the whole product:

- ``datasets`` and their ``classes`` (renamable, with a description, soft-deleted
  so history stays readable);
- ``images``: one row per decoded image file, with content hash, size, mode,
  split, current class and an ``excluded`` flag used by label review;
- ``actions`` and ``label_events``: every label change is an event belonging to
  an action (a bulk edit is one action); a *label version* is the id of the
  last event at a moment;
- ``runs``: training and fine-tuning runs, with the label version they used;
- ``jobs``: the queue of background processes (one at a time per device).
"""

from __future__ import annotations

import sqlite3

from core.store.db import transaction

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE datasets (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        source      TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL
    );

    CREATE TABLE classes (
        id          INTEGER PRIMARY KEY,
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        position    INTEGER NOT NULL DEFAULT 0,
        deleted_at  REAL
    );
    CREATE UNIQUE INDEX classes_live_name ON classes(dataset_id, name) WHERE deleted_at IS NULL;

    CREATE TABLE images (
        id            INTEGER PRIMARY KEY,
        dataset_id    INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        path          TEXT NOT NULL,            -- relative to the workspace root
        original_name TEXT NOT NULL DEFAULT '', -- where it came from, for reports
        sha256        TEXT NOT NULL,
        width         INTEGER NOT NULL,
        height        INTEGER NOT NULL,
        mode          TEXT NOT NULL,
        format        TEXT NOT NULL,
        num_bytes     INTEGER NOT NULL,
        split         TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
        class_id      INTEGER REFERENCES classes(id),
        excluded      INTEGER NOT NULL DEFAULT 0,
        added_at      REAL NOT NULL,
        UNIQUE (dataset_id, path)
    );
    CREATE INDEX images_by_class ON images(dataset_id, class_id);
    CREATE INDEX images_by_split ON images(dataset_id, split);
    CREATE INDEX images_by_hash  ON images(sha256);

    CREATE TABLE actions (
        id          INTEGER PRIMARY KEY,
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL,              -- import, relabel, bulk_relabel, undo, revert...
        description TEXT NOT NULL DEFAULT '',
        user        TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        undone_by   INTEGER REFERENCES actions(id)
    );

    CREATE TABLE label_events (
        id           INTEGER PRIMARY KEY,       -- the label version after this event
        action_id    INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
        image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        old_class_id INTEGER,
        new_class_id INTEGER,
        created_at   REAL NOT NULL
    );
    CREATE INDEX label_events_by_image  ON label_events(image_id);
    CREATE INDEX label_events_by_action ON label_events(action_id);

    CREATE TABLE runs (
        id            TEXT PRIMARY KEY,
        dataset_id    INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
        kind          TEXT NOT NULL DEFAULT 'train',   -- train, finetune
        name          TEXT NOT NULL DEFAULT '',
        tags          TEXT NOT NULL DEFAULT '',
        status        TEXT NOT NULL,                   -- queued, running, stopped, finished, failed
        config_json   TEXT NOT NULL DEFAULT '{}',
        metrics_json  TEXT NOT NULL DEFAULT '{}',
        label_version INTEGER,
        parent_run_id TEXT,
        pid           INTEGER,
        message       TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL,
        started_at    REAL,
        finished_at   REAL
    );

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT REFERENCES runs(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL,
        device      TEXT NOT NULL DEFAULT 'cpu',
        status      TEXT NOT NULL,              -- queued, running, done, failed, cancelled
        pid         INTEGER,
        args_json   TEXT NOT NULL DEFAULT '[]',
        created_at  REAL NOT NULL,
        started_at  REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_by_status ON jobs(status, device);
    """,
    # 2 (data): per-image content statistics computed once at import, and import reports.
    # phash: 64-bit dHash stored as a signed 64-bit INTEGER (see core/data/phash.py);
    # brightness: mean luma 0-255; sharpness: variance of the Laplacian of the luma;
    # mean_*/sq_*: per-channel means of x and x² (x in 0-1), for dataset mean and std;
    # flags: content quality bits (core/data/quality.py FLAG_*), refreshed on each import.
    """
    ALTER TABLE images ADD COLUMN phash INTEGER;
    ALTER TABLE images ADD COLUMN brightness REAL;
    ALTER TABLE images ADD COLUMN sharpness REAL;
    ALTER TABLE images ADD COLUMN mean_r REAL;
    ALTER TABLE images ADD COLUMN mean_g REAL;
    ALTER TABLE images ADD COLUMN mean_b REAL;
    ALTER TABLE images ADD COLUMN sq_r REAL;
    ALTER TABLE images ADD COLUMN sq_g REAL;
    ALTER TABLE images ADD COLUMN sq_b REAL;
    ALTER TABLE images ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX images_by_phash ON images(dataset_id, phash);

    CREATE TABLE import_reports (
        id          INTEGER PRIMARY KEY,
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        source      TEXT NOT NULL,
        added       INTEGER NOT NULL,
        report_json TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX import_reports_by_dataset ON import_reports(dataset_id, id);
    """,
    # 3 (labels): split/exclusion and class changes as events of an action, so every
    # edit is in the history and undoable; decisions of the label-review queue.
    """
    CREATE TABLE image_events (
        id          INTEGER PRIMARY KEY,
        action_id   INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
        image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        field       TEXT NOT NULL CHECK (field IN ('split', 'excluded')),
        old_value   TEXT,
        new_value   TEXT,
        created_at  REAL NOT NULL
    );
    CREATE INDEX image_events_by_action ON image_events(action_id);
    CREATE INDEX image_events_by_image  ON image_events(image_id);

    CREATE TABLE class_events (
        id          INTEGER PRIMARY KEY,
        action_id   INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
        class_id    INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        field       TEXT NOT NULL CHECK (field IN ('created', 'name', 'description', 'deleted_at')),
        old_value   TEXT,
        new_value   TEXT,
        created_at  REAL NOT NULL
    );
    CREATE INDEX class_events_by_action ON class_events(action_id);

    CREATE INDEX actions_by_dataset ON actions(dataset_id, id);
    CREATE INDEX label_events_by_old_class ON label_events(old_class_id);
    CREATE INDEX label_events_by_new_class ON label_events(new_class_id);

    CREATE TABLE label_reviews (
        id          INTEGER PRIMARY KEY,
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        run_id      TEXT NOT NULL DEFAULT '',
        decision    TEXT NOT NULL CHECK (decision IN ('accepted', 'kept', 'excluded')),
        action_id   INTEGER REFERENCES actions(id) ON DELETE SET NULL,
        user        TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL
    );
    CREATE INDEX label_reviews_by_image ON label_reviews(dataset_id, image_id);
    """,
    # 4 (data): (dataset_id, id) order for the unfiltered gallery's keyset paging, so a
    # page never sorts the whole dataset.
    """
    CREATE INDEX images_by_dataset ON images(dataset_id);
    """,
]


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database (SQLite's ``user_version``; 0 when new)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration; return the resulting schema version.

    Safe to call from several processes at once: each migration runs in an
    immediate transaction and re-checks the version inside it.
    """
    for target, script in enumerate(MIGRATIONS, start=1):
        if schema_version(conn) >= target:
            continue
        with transaction(conn):
            if schema_version(conn) >= target:
                continue
            for statement in _split_statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
    return schema_version(conn)


def _split_statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT)."""
    statements, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        candidate = "\n".join(buf).strip()
        if candidate.endswith(";") and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        statements.append(rest)
    return statements
