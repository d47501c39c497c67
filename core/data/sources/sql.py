"""SQL source: a SQLAlchemy URL plus a query returning image bytes or a path, and a label.

The query's columns are found by name: ``image`` (or ``bytes``/``data``/``blob``)
holding the encoded file, or ``path`` (relative paths are read from the folder of
a SQLite database file); ``label`` (or ``class``); optionally ``split``.

Nothing a query does may change a database or create a file. ``check_query`` accepts one
``SELECT``/``WITH`` statement with no write keyword (``INSERT``, ``UPDATE``, ``INTO``,
``CREATE``, ``ATTACH``, ``PRAGMA``...) outside literals and comments, as SQLite/SQL
Server/Oracle, MySQL and PostgreSQL each lex them. Each engine's own guard is the real one:
SQLite is opened with :mod:`sqlite3` (never SQLAlchemy) through a percent-encoded ``file:``
URI with ``mode=ro`` (``#``, ``?``, ``%`` stay in the name; a missing file is an error, never
a new database), ``query_only``, ``trusted_schema=OFF``, no ``ATTACH`` and an authorizer
that allows only select/read/function/recursive, so every write, DDL and ``PRAGMA`` is
refused before it runs. PostgreSQL sessions are ``READ ONLY`` (``SET SESSION
CHARACTERISTICS`` and ``postgresql_readonly``), MySQL/MariaDB ``SET SESSION TRANSACTION READ
ONLY``, Oracle ``SET TRANSACTION READ ONLY`` at each begin. SQL Server and other engines
have no read-only mode: the transaction is rolled back, and the login should only SELECT.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

from core.data.catalog import SPLITS
from core.data.files import read_file
from core.data.import_reading import SourceItem
from core.data.ingest import DatasetWriter
from core.errors import ImageLabError
from core.store.path_policy import OUTSIDE_ROOTS, check_server_path

SQL_PREFIXES = ("sqlite:", "sqlite+", "postgresql", "postgres:", "mysql", "mariadb", "mssql",
                "oracle")
_IMAGE_KEYS = ("image", "bytes", "data", "blob", "content")
_PATH_KEYS = ("path", "file", "filename")
_LABEL_KEYS = ("label", "class", "category", "target")
_SQLITE_URL = re.compile(r"(?is)^sqlite(?:\+\w+)?:(?:///(.*))?")
_WRITE_WORDS = re.compile(r"(?i)\b(insert|update|delete|merge|upsert|into|create|drop|alter|"
                          r"truncate|attach|detach|pragma|vacuum|reindex|grant|revoke)\b")
# How engines quote and comment: (quote characters, those in which a backslash escapes,
# ``#`` starts a comment and ``--`` needs a space after it, PostgreSQL's $tag$ and E'...').
_LEXERS = (("'\"`[", "", False, False),     # SQLite, SQL Server, Oracle
           ("'\"`", "'\"", True, False),    # MySQL, MariaDB
           ("'\"", "", False, True))        # PostgreSQL
_DOLLAR = re.compile(r"\$([A-Za-z_]\w*)?\$")
_SQLITE_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 sqlite3.SQLITE_RECURSIVE}
_SQLITE_ACTIONS = {getattr(sqlite3, f"SQLITE_{n}"): n.replace("_", " ") for n in (
    "INSERT UPDATE DELETE ATTACH DETACH PRAGMA TRANSACTION SAVEPOINT ANALYZE REINDEX ALTER_TABLE "
    "CREATE_TABLE CREATE_INDEX CREATE_VIEW CREATE_TRIGGER CREATE_VTABLE").split()}
_READ_ONLY_MESSAGE = "is refused: the database is opened read-only"


def is_sql_url(source: str) -> bool:
    """True if ``source`` starts like a SQLAlchemy database URL (``sqlite:``, ``postgresql``...)."""
    return source.lower().startswith(SQL_PREFIXES)


def _code(q: str, quotes: str, backslash: str, mysql: bool, postgres: bool) -> str:
    """``q`` with string literals, quoted names and comments blanked out (same length)."""
    out, i, n = list(q), 0, len(q)
    while i < n:
        c, j = q[i], i + 1
        if c in quotes:
            close = "]" if c == "[" else c
            esc = c in backslash or (postgres and c == "'" and q[i - 1:i] in ("e", "E")
                                     and not re.match(r"\w", q[i - 2:i - 1]))
            while j < n and not (q[j] == close and q[j + 1:j + 2] != close or close == "]"
                                 and q[j] == close):
                j += 2 if (esc and q[j] == "\\") or q[j] == close else 1
            j += 1
        elif postgres and c == "$" and (m := _DOLLAR.match(q, i)) and \
                not re.match(r"\w", q[i - 1:i]):
            end = q.find(m.group(0), m.end())
            j = n if end < 0 else end + len(m.group(0))
        elif (q.startswith("--", i) and (not mysql or q[i + 2:i + 3].isspace()
                                         or i + 2 == n)) or (mysql and c == "#"):
            j = n if q.find("\n", i) < 0 else q.find("\n", i)
        elif q.startswith("/*", i) and not q.startswith(("/*!", "/*M!"), i):
            j = n if q.find("*/", i + 2) < 0 else q.find("*/", i + 2) + 2
        else:
            i = j
            continue
        out[i:j] = " " * (min(j, n) - i)
        i = j
    return "".join(out)


def check_query(query: str | None) -> str:
    """Return ``query`` without a trailing ``;`` if it is one ``SELECT``/``WITH`` statement.

    Raises ``ImageLabError`` for an empty query, several statements, a statement that is
    not a ``SELECT``/``WITH``, or a write keyword outside literals and comments (the
    module docstring says which engines read quotes and comments how).
    """
    q = (query or "").strip()
    if not q.rstrip(";").strip():
        raise ImageLabError("a SQL source needs a query (--query \"SELECT image, label FROM ...\")")
    codes = [_code(q, *lexer) for lexer in _LEXERS]
    end = len(q)
    for code in codes:
        semi = code.find(";")
        if semi >= 0:
            if code[semi:].replace(";", " ").strip():
                raise ImageLabError("the SQL query must be a single statement")
            end = min(end, semi)
    for code in codes:
        if not re.match(r"(?is)\s*(select|with)\b", code[:end]):
            raise ImageLabError("the SQL query must be a SELECT (the database is opened read-only)")
        if m := _WRITE_WORDS.search(code[:end]):
            raise ImageLabError(f"the SQL query must only read: {m.group(0).upper()} "
                                f"{_READ_ONLY_MESSAGE}")
    return q[:end].rstrip()


def sqlite_file(url: str, network: bool = False) -> Path:
    """The existing SQLite database file that a ``sqlite:`` URL names, resolved.

    The text after ``sqlite:///`` is taken as it is first (so a ``#`` or ``?`` in the file
    name works), then the way SQLAlchemy reads it (``?options`` dropped, ``%XX`` decoded).
    Raises ``ImageLabError`` for an in-memory URL or a path that is not a file, and in
    network mode for one outside the data roots (``core.store.path_policy``).
    """
    m = _SQLITE_URL.match(url)
    raw = (m.group(1) or "") if m else ""
    decoded = unquote(raw.split("?", 1)[0])
    if decoded in ("", ":memory:"):
        raise ImageLabError("give a SQLite database file: sqlite:///path/to/file.db")
    for text in dict.fromkeys((raw, decoded)):
        path = check_server_path(text, network)  # network mode: data roots only
        try:
            if "\0" not in text and path.is_file():
                return path.resolve()
        except OSError:
            continue
    raise ImageLabError(f"SQLite database {Path(decoded).expanduser().absolute()} not found")


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    """Open the SQLite file at ``path`` so that no statement can change it or create a file.

    Returns the connection and a list to which its authorizer appends each action it
    refused (e.g. ``"UPDATE (pics)"``), for the error message. Raises ``ImageLabError``
    if the file cannot be opened as a database.
    """
    uri = f"file:{quote(os.fsencode(Path(path).resolve()), safe='/')}?mode=ro"
    refused: list[str] = []

    def authorize(action: int, arg1: str | None, *_rest) -> int:
        if action in _SQLITE_READS:
            return sqlite3.SQLITE_OK
        name = _SQLITE_ACTIONS.get(action, f"action {action}")
        if arg1 in ("sqlite_master", "sqlite_temp_master", "sqlite_schema"):
            name, arg1 = f"{name} of the schema (CREATE, DROP or ALTER)", None
        refused.append(f"{name} ({arg1})" if arg1 else name)
        return sqlite3.SQLITE_DENY

    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ImageLabError(f"cannot open SQLite database {path}: {exc}") from None
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")   # not a database: fail here
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    except sqlite3.Error as exc:
        conn.close()
        raise ImageLabError(f"cannot open SQLite database {path}: {exc}") from None
    conn.set_authorizer(authorize)
    return conn, refused


def _engine(url: str):
    try:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImageLabError(f"SQLAlchemy is needed for SQL sources ({exc}); run `make setup`") from None
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ImageLabError(f"not a valid SQLAlchemy URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    try:
        engine = create_engine(url, execution_options={"postgresql_readonly": True}
                               if backend == "postgresql" else {})
    except Exception as exc:  # missing driver, bad options
        raise ImageLabError(f"cannot use database {parsed.render_as_string(hide_password=True)}:"
                            f" {exc}") from None
    session = {"postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
               "mysql": "SET SESSION TRANSACTION READ ONLY",
               "mariadb": "SET SESSION TRANSACTION READ ONLY"}.get(backend)
    if session:
        def read_only_session(dbapi_conn, _record) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(session)
            cursor.close()
            dbapi_conn.commit()
        event.listen(engine, "connect", read_only_session)
    elif backend == "oracle":
        event.listen(engine, "begin",
                     lambda conn: conn.exec_driver_sql("SET TRANSACTION READ ONLY"))
    return engine


@contextmanager
def _run_query(url: str, q: str, network: bool
               ) -> Iterator[tuple[list[str], Iterable[Sequence], Path | None]]:
    """Yield the result's column names (lower case), its rows and the folder for relative
    paths (a SQLite file's folder, else None)."""
    if _SQLITE_URL.match(url):
        path = sqlite_file(url, network)
        conn, refused = connect_read_only(path)
        try:
            try:
                cursor = conn.execute(q)
            except sqlite3.DatabaseError:
                if refused:
                    raise ImageLabError(f"the SQL query must only read: {refused[0]} "
                                        f"{_READ_ONLY_MESSAGE}") from None
                raise
            yield [d[0].lower() for d in cursor.description or ()], cursor, path.parent
        finally:
            conn.close()
        return
    if network:  # another database server would be reached from this machine
        raise ImageLabError("on a network, only SQLite files under the data roots can be read")
    from sqlalchemy import text
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                result = conn.execute(text(q))
                yield [c.lower() for c in result.keys()], result, None
            finally:
                trans.rollback()
    finally:
        engine.dispose()


def import_sql(writer: DatasetWriter, url: str, query: str | None, *,
               network: bool = False) -> None:
    """Run ``query`` on the database at ``url`` and hand each row's image to ``writer``.

    Columns are found by name (see the module docstring). Rows without an image, with
    text in the image column, a missing file or an unknown split go to ``writer.skip``.
    Raises ``ImageLabError`` for a bad query, one that would write, one that fails, or
    results without an image or path column. ``network``: the database file and every
    path a row names must lie under the data roots (``core.store.path_policy``).
    """
    q = check_query(query)
    items: list[SourceItem] = []
    try:
        with _run_query(url, q, network) as (cols, rows, base_dir):
            img_col = next((cols.index(k) for k in _IMAGE_KEYS if k in cols), None)
            path_col = next((cols.index(k) for k in _PATH_KEYS if k in cols), None)
            label_col = next((cols.index(k) for k in _LABEL_KEYS if k in cols), None)
            split_col = cols.index("split") if "split" in cols else None
            if img_col is None and path_col is None:
                raise ImageLabError("the query must return an 'image' column (bytes) or a "
                                    f"'path' column; it returned: {', '.join(cols)}")
            for n, row in enumerate(rows, start=1):
                where = f"row {n}"
                label = row[label_col] if label_col is not None else None
                label = None if label is None or str(label).strip() == "" else str(label)
                split = row[split_col] if split_col is not None else None
                split = str(split).strip().lower() if split else None
                if split and split not in SPLITS:
                    writer.skip(where, f"unknown split {split!r}")
                    continue
                if img_col is not None and row[img_col] is not None:
                    value = row[img_col]
                    if isinstance(value, str):
                        writer.skip(where, "the image column holds text, not bytes")
                        continue
                    data = bytes(value)
                    items.append(SourceItem(where, lambda d=data: d, label, split))
                elif path_col is not None and row[path_col]:
                    p = Path(str(row[path_col])).expanduser()
                    if not p.is_absolute() and base_dir is not None:
                        p = base_dir / p
                    try:
                        p = check_server_path(p, network)
                    except ImageLabError:
                        writer.skip(f"{where}: {row[path_col]}", OUTSIDE_ROOTS)
                        continue
                    if not p.is_file():
                        writer.skip(f"{where}: {row[path_col]}", "file not found")
                        continue
                    items.append(SourceItem(f"{where}: {row[path_col]}",
                                            lambda q_=p: read_file(q_), label, split))
                else:
                    writer.skip(where, "no image bytes or path in this row")
    except ImageLabError:
        raise
    except Exception as exc:  # sqlite3.Error, sqlalchemy.exc.SQLAlchemyError and driver errors
        msg = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ImageLabError(f"the SQL query failed: {msg}") from None
    writer.add_items(items)
