"""PostgreSQL schema migrations, applied once under a transaction advisory lock.

Processes starting together queue on the lock instead of racing; a database
migrated by a newer mnesis is refused before anything changes.
"""

from __future__ import annotations

import time
from typing import Any

from mnesis.store.migrations import load_migrations, refuse_newer

_MIGRATION_LOCK = 0x6D6E6573  # "mnes": the advisory lock key for schema changes


async def migrate(conn: Any, url: str) -> None:
    """Apply the pending migrations in one transaction."""
    migrations = load_migrations("postgres")
    latest = migrations[-1].version
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        current = 0
        if exists:
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        refuse_newer(url, current, latest)
        if current == latest:
            return
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        for migration in migrations:
            if migration.version <= current:
                continue
            await conn.execute(migration.sql)  # a script: no parameters, several statements
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                time.time(),
            )
