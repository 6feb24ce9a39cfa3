"""sqlite3 errors to mnesis errors: one table, first matching row wins.

Every exception class :mod:`sqlite3` defines is covered (a test walks the
module); the rows above the catch-alls pick out what a user can act on.
"""

from __future__ import annotations

import sqlite3

from mnesis.errors import MnesisError
from mnesis.store.sql.errors import Rule, constraint, not_utf8, store_error, translate

RULES: tuple[Rule, ...] = (
    Rule(sqlite3.IntegrityError, constraint),
    Rule(
        sqlite3.OperationalError,
        store_error("database {where} stayed locked past the timeout"),
        texts=("locked",),
    ),
    Rule(
        sqlite3.OperationalError,
        store_error("database {where} is read-only (no write access to the file or its folder)"),
        texts=("readonly",),
    ),
    Rule(
        sqlite3.DatabaseError,
        store_error("{where} is not a readable mnesis database"),
        texts=("not a database", "malformed"),
    ),
    Rule(
        sqlite3.OperationalError,
        store_error("cannot open database file {where}"),
        texts=("unable to open",),
    ),
    Rule(sqlite3.Error, store_error("SQLite error on {where}")),
    Rule(sqlite3.Warning, store_error("SQLite error on {where}")),
    Rule(UnicodeEncodeError, not_utf8),
)


def translate_error(exc: BaseException, path: str) -> MnesisError | None:
    """The mnesis error for a driver error on ``path``; None for any other exception."""
    return translate(RULES, exc, path)
