"""SQLite schema migrations: numbered scripts, each in its own transaction.

A file written by a newer mnesis is refused before anything writes to it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

from mnesis.store.migrations import load_migrations, refuse_newer
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


def refuse_newer_schema(conn: sqlite3.Connection, path: str) -> None:
    """``SchemaVersionError`` if the file's schema is newer than this code's."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists:
        (current,) = conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ).fetchone()
        refuse_newer(path, current, load_migrations("sqlite")[-1].version)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply the pending migrations, each in its own transaction."""
    migrations = load_migrations("sqlite")
    latest = migrations[-1].version
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for migration in migrations:
        with transaction(conn):
            (current,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ).fetchone()
            refuse_newer(path, current, latest)
            if current >= migration.version:
                continue
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
    with transaction(conn):
        (current,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        refuse_newer(path, current, latest)
