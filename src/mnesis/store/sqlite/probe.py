"""What a database file is, found out read-only before anything writes to it.

Opening another application's SQLite file must leave it byte-identical: no
switch to WAL, no ``schema_migrations`` table added. So the file is looked at
first through its header and a read-only connection, and only a missing or
empty file, one that mnesis's own migrations wrote, or one of mnesis 0.4.0
(which is migrated, see :mod:`mnesis.store.sqlite.mnesis040`) goes on to be
opened for writing. A file on read-only media (or without write permission) is
opened read-only: reading a stored session needs no write access.
"""

from __future__ import annotations

import enum
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from mnesis.errors import ForeignDatabaseError, MnesisStoreError

# Tables that only a mnesis 0.4.0 database has together (it kept no schema version).
MNESIS_040_TABLES = frozenset(
    {"sessions", "messages", "message_parts", "summary_nodes", "context_items", "file_references"}
)
_MIGRATION_COLUMNS = frozenset({"version", "name", "applied_at"})


class FileKind(enum.Enum):
    """What :func:`probe` found at a path."""

    MISSING = "missing"
    EMPTY = "empty"  # no bytes, or an SQLite file without a single table
    MNESIS = "mnesis"
    MNESIS_040 = "mnesis 0.4.0"  # the published mnesis 0.4.0's schema: migrated when opened


def probe(path: Path, timeout: float) -> FileKind:
    """What ``path`` holds, read-only; ``ForeignDatabaseError`` for anything not ours."""
    try:
        with path.open("rb") as handle:
            header = handle.read(1)
    except FileNotFoundError:
        return FileKind.MISSING
    except IsADirectoryError:
        raise MnesisStoreError(f"{path} is a folder, not a database file") from None
    except OSError as exc:
        raise MnesisStoreError(f"cannot read database file {path}: {exc.strerror or exc}") from exc
    if not header:
        return FileKind.EMPTY
    conn = connect_read_only(path, timeout)  # not SQLite at all: sqlite3.DatabaseError
    try:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
            )
        }
        (application_id,) = conn.execute("PRAGMA application_id").fetchone()
        if _written_by_mnesis(conn, tables):
            return FileKind.MNESIS
    finally:
        conn.close()
    if not tables and not application_id:
        return FileKind.EMPTY
    if MNESIS_040_TABLES <= tables:
        return FileKind.MNESIS_040
    shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
    raise ForeignDatabaseError(
        f"{path} is another application's SQLite database (tables: {shown or 'none'}), "
        "not a mnesis one; it was left untouched. Give mnesis a file of its own"
    )


def _written_by_mnesis(conn: sqlite3.Connection, tables: set[str]) -> bool:
    """Whether mnesis's migrations made this schema: their table, with their columns.

    (Other tools' tables of that name differ: Rails keeps only ``version``,
    golang-migrate ``version`` and ``dirty``.) A file whose first migration
    is not committed yet holds that table alone.
    """
    if "schema_migrations" not in tables:
        return False
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
    if columns != _MIGRATION_COLUMNS:
        return False
    (steps,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    return bool(steps) or tables == {"schema_migrations"}


def connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection that cannot write to ``path``, even on read-only media.

    A WAL database needs its shared-memory file; on media where it cannot be
    created the file cannot change either, so it is read as immutable.
    """
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        return _connect(uri, timeout)
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) or writable(path):
            raise
    return _connect(uri + "&immutable=1", timeout)


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    """A connection to ``uri`` once a first read succeeded (SQLite opens files lazily)."""
    conn = sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def writable(path: Path) -> bool:
    """Whether ``path`` and its folder (for the WAL and lock files) can be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
