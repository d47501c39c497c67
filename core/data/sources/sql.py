"""SQL source: a SQLAlchemy URL plus a query returning image bytes or a path, and a label.

The query's columns are found by name: ``image`` (or ``bytes``/``data``/``blob``)
holding the encoded file, or ``path`` (relative paths are read from the folder of
a SQLite database file); ``label`` (or ``class``); optionally ``split``.

The database is opened read-only: SQLite through ``mode=ro`` (so a missing file
is an error, never a new empty database); other databases inside a transaction
that is rolled back, and only a single ``SELECT``/``WITH`` statement is accepted.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

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


def is_sql_url(source: str) -> bool:
    """True if ``source`` starts like a SQLAlchemy database URL (``sqlite:``, ``postgresql``...)."""
    return source.lower().startswith(SQL_PREFIXES)


def check_query(query: str | None) -> str:
    """Return ``query`` stripped of a trailing ``;`` if it is one ``SELECT``/``WITH`` statement.

    Raises ``ImageLabError`` for an empty query, several statements, or anything else.
    """
    q = (query or "").strip().rstrip(";").strip()
    if not q:
        raise ImageLabError("a SQL source needs a query (--query \"SELECT image, label FROM ...\")")
    if ";" in q:
        raise ImageLabError("the SQL query must be a single statement")
    if not re.match(r"(?is)^\s*(select|with)\b", q):
        raise ImageLabError("the SQL query must be a SELECT (the database is opened read-only)")
    return q


def _engine(url: str, network: bool = False):
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImageLabError(f"SQLAlchemy is needed for SQL sources ({exc}); run `make setup`") from None
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ImageLabError(f"not a valid SQLAlchemy URL: {url!r} ({exc})") from None
    base_dir = None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise ImageLabError("give a SQLite database file: sqlite:///path/to/file.db")
        path = check_server_path(db, network).resolve()  # network mode: data roots only
        if not path.is_file():
            raise ImageLabError(f"SQLite database {path} not found")
        base_dir = path.parent
        uri = f"file:{path.as_posix()}?mode=ro"
        engine = create_engine("sqlite+pysqlite://",
                               creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    elif network:  # another database server would be reached from this machine
        raise ImageLabError("on a network, only SQLite files under the data roots can be read")
    else:
        try:
            engine = create_engine(url, execution_options={"postgresql_readonly": True}
                                   if parsed.get_backend_name() == "postgresql" else {})
        except Exception as exc:  # missing driver, bad options
            raise ImageLabError(f"cannot use database {parsed.render_as_string(hide_password=True)}:"
                                f" {exc}") from None
    return engine, base_dir


def import_sql(writer: DatasetWriter, url: str, query: str | None, *,
               network: bool = False) -> None:
    """Run ``query`` on the database at ``url`` and hand each row's image to ``writer``.

    Columns are found by name (see the module docstring). Rows without an image, with
    text in the image column, a missing file or an unknown split go to ``writer.skip``.
    Raises ``ImageLabError`` for a bad query, a query that fails, or results without an
    image or path column. ``network``: the database file and every path a row names must
    lie under the data roots (``core.store.path_policy``).
    """
    q = check_query(query)
    engine, base_dir = _engine(url, network)
    from sqlalchemy import text
    items: list[SourceItem] = []
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                result = conn.execute(text(q))
                cols = [c.lower() for c in result.keys()]
                img_col = next((cols.index(k) for k in _IMAGE_KEYS if k in cols), None)
                path_col = next((cols.index(k) for k in _PATH_KEYS if k in cols), None)
                label_col = next((cols.index(k) for k in _LABEL_KEYS if k in cols), None)
                split_col = cols.index("split") if "split" in cols else None
                if img_col is None and path_col is None:
                    raise ImageLabError("the query must return an 'image' column (bytes) or a "
                                        f"'path' column; it returned: {', '.join(cols)}")
                for n, row in enumerate(result, start=1):
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
                        items.append(SourceItem(f"{where}", lambda d=data: d, label, split))
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
            finally:
                trans.rollback()
    except ImageLabError:
        raise
    except Exception as exc:  # sqlalchemy.exc.SQLAlchemyError and driver errors
        msg = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ImageLabError(f"the SQL query failed: {msg}") from None
    finally:
        engine.dispose()
    writer.add_items(items)
