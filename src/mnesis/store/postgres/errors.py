"""asyncpg errors to mnesis errors: one table, first matching row wins; no passwords.

asyncpg loads lazily (``import mnesis`` must not need it), so the table is
built on first use. Every exception class :mod:`asyncpg.exceptions` defines is
covered (a test walks the module); the rows above the catch-alls pick out what
a user can act on. Errors name the database by :func:`redact_url`, never with
its password.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mnesis.errors import ConfigError, MnesisError, MnesisStoreError
from mnesis.store.sql.errors import (
    Rule,
    constraint,
    invalid_input,
    not_utf8,
    store_error,
    translate,
)


def redact_url(url: str) -> str:
    """The URL without its password (what errors and ``store.url`` show); never raises.

    Works on the text of the URL, not its parsed port, so a malformed URL (a
    port that is not a number) is still shown without its password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://(a malformed URL)"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = userinfo.partition(":")[0] + at + hostport
    query = "&".join(
        "password=***" if field.lower().startswith("password=") else field
        for field in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def check_dsn(dsn: str) -> None:
    """``ConfigError`` for a PostgreSQL URL that cannot name a server (such as its port)."""
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ConfigError(f"invalid PostgreSQL URL {redact_url(dsn)}: {exc}") from None


def import_asyncpg() -> Any:
    """The asyncpg module, or an error that names the extra to install."""
    try:
        import asyncpg
    except ImportError as exc:
        raise MnesisStoreError(
            "PostgreSQL storage needs the asyncpg driver: pip install 'mnesis[postgres]'"
        ) from exc
    return asyncpg


@functools.cache
def rules() -> tuple[Rule, ...]:
    """The translation table (asyncpg imported on first use)."""
    pg = import_asyncpg()
    unstorable = invalid_input("text PostgreSQL cannot store (such as a NUL character)")
    login = store_error("PostgreSQL refused the login for {where}")
    unreachable = store_error("cannot reach PostgreSQL at {where}")
    generic = store_error("PostgreSQL error on {where}")
    return (
        Rule(UnicodeEncodeError, not_utf8, via_cause=True),
        Rule(pg.CharacterNotInRepertoireError, unstorable),
        Rule(pg.UntranslatableCharacterError, unstorable),
        Rule(pg.IntegrityConstraintViolationError, constraint),
        Rule(
            pg.InvalidCatalogNameError,
            store_error("database of {where} does not exist (create it first)"),
        ),
        Rule(pg.InvalidAuthorizationSpecificationError, login),
        Rule(pg.InvalidPasswordError, login),
        Rule(OSError, unreachable),  # TimeoutError included
        Rule(pg.ConnectionDoesNotExistError, unreachable),
        Rule(pg.DataError, invalid_input("value PostgreSQL cannot store")),
        Rule(pg.PostgresError, generic),
        Rule(pg.InterfaceError, generic),
        Rule(pg.InternalClientError, generic),
        # Warnings and notices arrive as messages, not raised; mapped for completeness.
        Rule(pg.exceptions.PostgresLogMessage, generic),
        Rule(pg.exceptions.InterfaceWarning, generic),
    )


def translate_error(exc: BaseException, url: str) -> MnesisError | None:
    """The mnesis error for a driver or network error; None for any other exception."""
    return translate(rules(), exc, url)
