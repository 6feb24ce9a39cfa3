"""A fresh PostgreSQL database per test, on the server ``MNESIS_TEST_PG_URL`` names
(default ``postgresql://postgres@127.0.0.1:5432/postgres``, the maintenance database).

Without a reachable server the tests that need one are skipped, except when
``CI=true``: there they fail. The fixtures (``pg_database``, ``db_url``) are in
``tests/conftest.py``; these helpers are for fixtures of their own.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ADMIN_URL = os.environ.get("MNESIS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_unreachable: list[str] = []  # the reason, once a connection attempt failed


def pg_url(database: str) -> str:
    """The test server's URL for ``database``."""
    return urlunsplit(urlsplit(PG_ADMIN_URL)._replace(path="/" + database))


async def pg_admin() -> Any:
    """A connection to the maintenance database, or skip (fail on CI) if none."""
    if _pg_unreachable:
        skip_or_fail(_pg_unreachable[0])
    try:
        import asyncpg
    except ImportError:
        skip_or_fail("asyncpg is not installed (pip install 'mnesis[postgres]')")
    try:
        return await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        _pg_unreachable.append(reason)
        skip_or_fail(reason)
        raise


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(reason)


async def create_pg_database() -> str:
    """A fresh, empty database on the test server; its name."""
    admin = await pg_admin()
    name = "mnesis_test_" + secrets.token_hex(6)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_pg_database(name: str) -> None:
    admin = await pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
