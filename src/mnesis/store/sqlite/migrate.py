"""SQLite schema migrations: numbered scripts, each in its own transaction.

A file written by a newer mnesis is refused before anything writes to it; a
read-only one is read as it is, if it needs no migration.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

from mnesis.errors import MnesisStoreError
from mnesis.store.migrations import Migration, load_migrations, refuse_newer
from mnesis.store.sqlite.dialect import transaction


def split_statements(script: str) -> Iterator[str]:
    """The statements of a migration script, comments-only chunks skipped."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if not _only_comments(statement):
                yield statement
    if not _only_comments(buffer):
        raise RuntimeError(f"incomplete SQL statement in migration: {buffer[:80]!r}")


def _only_comments(text: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("--") for ln in text.splitlines())


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version (0 before the first migration)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    (current,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(current)


def refuse_newer_schema(conn: sqlite3.Connection, path: str) -> None:
    """``SchemaVersionError`` if the file's schema is newer than this code's."""
    refuse_newer(path, schema_version(conn), load_migrations("sqlite")[-1].version)


def refuse_pending(conn: sqlite3.Connection, path: str) -> None:
    """For a file opened read-only: refuse a newer schema, and an older one."""
    current, latest = schema_version(conn), load_migrations("sqlite")[-1].version
    refuse_newer(path, current, latest)
    if current < latest:
        raise MnesisStoreError(
            f"database {path} is opened read-only and has schema version {current}, older "
            f"than this mnesis needs ({latest}); open it once with mnesis, with write access, "
            "to migrate it"
        )


_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply the pending migrations, each in its own transaction."""
    migrations = load_migrations("sqlite")
    latest = migrations[-1].version
    conn.execute(_CREATE_VERSION_TABLE)
    for migration in migrations:
        with transaction(conn):
            (current,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ).fetchone()
            refuse_newer(path, current, latest)
            if current < migration.version:
                _apply(conn, migration)
    with transaction(conn):
        (current,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        refuse_newer(path, current, latest)


def create_schema_in_transaction(conn: sqlite3.Connection) -> None:
    """Every migration on a file without our schema, inside the caller's transaction
    (importing a mnesis 0.4.0 file builds the schema and fills it atomically)."""
    conn.execute(_CREATE_VERSION_TABLE)
    for migration in load_migrations("sqlite"):
        _apply(conn, migration)


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    for statement in split_statements(migration.sql):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, time.time()),
    )
