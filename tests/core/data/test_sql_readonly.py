"""The SQL source never changes a database or creates a file (issue 17, item 3).

Real SQLite files made by the test: odd names (``#``, ``?``) import without a new file
beside them; every kind of write is refused with a clear message, by the query check and,
underneath it, by the read-only SQLite connection's authorizer; the file's bytes and mtime
stay the same.
"""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from core.data.sources import ImportOptions, import_source
from core.data.sources.sql import check_query, connect_read_only, sqlite_file
from core.errors import ImageLabError
from tests.core.data.corpus import png_bytes

SELECT = "SELECT img AS image, tag AS label FROM pics ORDER BY id"


def _make_db(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE pics (id INTEGER PRIMARY KEY, img BLOB, tag TEXT)")
    conn.executemany("INSERT INTO pics(img, tag) VALUES (?, ?)",
                     [(png_bytes(i), "cat" if i % 2 else "dog") for i in range(4)])
    conn.commit()
    conn.close()
    return path


def _state(db):
    """The database's bytes and mtime, and every name in its folder."""
    return (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns,
            sorted(p.name for p in db.parent.iterdir()))


@pytest.fixture
def db(tmp_path):
    folder = tmp_path / "dbs"
    folder.mkdir()
    return _make_db(folder / "pics.sqlite")


@pytest.mark.parametrize("name", ["a#b.sqlite", "q?x.sqlite", "p%41 c.sqlite"])
def test_odd_names_import_and_create_nothing(workspace, tmp_path, name):
    folder = tmp_path / "dbs"
    folder.mkdir()
    path = _make_db(folder / name)
    before = _state(path)
    report = import_source(workspace, f"sqlite:///{path}", "odd", ImportOptions(query=SELECT))
    assert report.added == 4 and report.classes == ["cat", "dog"]
    assert _state(path) == before          # no file "a" or "q" beside it, nothing changed
    assert sqlite_file(f"sqlite:///{path}") == path.resolve()


def test_percent_encoded_url_names_the_file(db, tmp_path):
    odd = db.rename(db.with_name("q?x#y.sqlite"))
    assert sqlite_file(f"sqlite:///{str(odd).replace('?', '%3F').replace('#', '%23')}") == odd
    with pytest.raises(ImageLabError, match="not found"):
        sqlite_file(f"sqlite:///{tmp_path / 'missing.sqlite'}")
    with pytest.raises(ImageLabError, match="give a SQLite database file"):
        sqlite_file("sqlite:///:memory:")
    assert not (tmp_path / "missing.sqlite").exists()


WRITES = [
    ("WITH x AS (SELECT 1) UPDATE pics SET tag = 'x'", "must only read: UPDATE"),
    ("WITH x AS (SELECT 1) DELETE FROM pics", "must only read: DELETE"),
    ("WITH x AS (SELECT 1) INSERT INTO pics(tag) VALUES ('x')", "must only read: INSERT"),
    ("DELETE FROM pics", "must be a SELECT"),
    ("INSERT INTO pics(tag) VALUES ('x')", "must be a SELECT"),
    ("ATTACH DATABASE 'other.sqlite' AS o", "must be a SELECT"),
    ("PRAGMA writable_schema=1", "must be a SELECT"),
    ("CREATE TABLE t2 (x)", "must be a SELECT"),
    (f"{SELECT}; DROP TABLE pics", "single statement"),
    ("SELECT img AS image FROM pics; -- x\nDROP TABLE pics", "single statement"),
    ("SELECT img AS image INTO copy FROM pics", "must only read: INTO"),
]


@pytest.mark.parametrize("query,message", WRITES)
def test_writes_are_refused_and_change_nothing(workspace, db, query, message):
    before = _state(db)
    with pytest.raises(ImageLabError, match=message) as exc:
        import_source(workspace, f"sqlite:///{db}", "w", ImportOptions(query=query))
    assert "read-only" in str(exc.value) or "single statement" in str(exc.value)
    assert _state(db) == before
    with workspace.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0


@pytest.mark.parametrize("statement,action", [
    ("WITH x AS (SELECT 1) UPDATE pics SET tag = 'x'", "UPDATE (pics)"),
    ("WITH x AS (SELECT 1) DELETE FROM pics", "DELETE (pics)"),
    ("INSERT INTO pics(tag) VALUES ('x')", "INSERT (pics)"),
    ("ATTACH DATABASE 'other.sqlite' AS o", "ATTACH"),
    ("PRAGMA writable_schema=1", "PRAGMA (writable_schema)"),
    ("PRAGMA query_only=OFF", "PRAGMA (query_only)"),
    ("CREATE TABLE t2 (x)", "INSERT of the schema"),
    ("CREATE TEMP TABLE t3 (x)", "INSERT of the schema"),
    ("DROP TABLE pics", "DELETE of the schema"),
])
def test_the_connection_authorizer_refuses_writes_itself(db, statement, action):
    """Underneath the query check: the raw statement, straight to the read-only connection."""
    before = _state(db)
    conn, refused = connect_read_only(db)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(statement)
        assert refused and refused[0].startswith(action)
        assert conn.execute("SELECT COUNT(*) FROM pics").fetchone() == (4,)
    finally:
        conn.close()
    assert _state(db) == before


def test_a_normal_select_imports_and_reads_only(workspace, db):
    before = _state(db)
    query = ("SELECT img AS image, tag AS label FROM pics -- the labels; all of them\n"
             "WHERE tag <> 'update; drop' ORDER BY id;")
    report = import_source(workspace, f"sqlite:///{db}", "ok", ImportOptions(query=query))
    assert report.added == 4 and report.classes == ["cat", "dog"]
    assert _state(db) == before
    not_a_db = db.with_name("text.sqlite")
    not_a_db.write_text("not a database")
    with pytest.raises(ImageLabError, match="cannot open SQLite database"):
        import_source(workspace, f"sqlite:///{not_a_db}", "bad", ImportOptions(query=SELECT))


def test_check_query_reads_quotes_and_comments_like_each_engine():
    assert check_query("SELECT 'a;b' AS label, \"update\" AS image FROM t; ") == \
        "SELECT 'a;b' AS label, \"update\" AS image FROM t"
    assert check_query("/* c */ SELECT 1 AS image -- DROP\n") == "/* c */ SELECT 1 AS image -- DROP"
    tricks = ["SELECT 1 /*! ; DROP TABLE t */",             # MySQL runs /*! ... */
              "SELECT '\\'' ; DROP TABLE t; -- '",           # MySQL: \' escapes
              "SELECT $$'$$; DROP TABLE t; --'",             # PostgreSQL dollar quotes
              "SELECT E'\\'' , 1 # 1 ; DROP TABLE t; --'",   # PostgreSQL E'' strings
              "SELECT 1 --1; DROP TABLE t",                  # MySQL: --1 is no comment
              "SELECT 1 AS image FOR UPDATE", "SELECT * INTO OUTFILE '/tmp/x' FROM t",
              "", "  ;  ", "VALUES (1)"]
    for query in tricks:
        with pytest.raises(ImageLabError):
            check_query(query)
