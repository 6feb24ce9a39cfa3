"""How the shared statements run on SQLite.

The shared SQL is written with PostgreSQL's row-lock clauses and ``= ANY(?)``
arrays; SQLite needs neither form: a write transaction (``BEGIN IMMEDIATE``)
already holds the file's write lock, so lock clauses are dropped, and an array
travels as one JSON parameter read back through ``json_each``. Full text lives
in the contentless FTS5 table ``search_index`` (rowid = the body's key).

:func:`run` drives an algorithm on a connection; it runs on the store's writer
thread, so a public call costs one hop however many statements it takes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from mnesis.store.sql.statements import Steps, Stmt, all_rows, many

T = TypeVar("T")

_ARRAY = "= ANY(?)"
_JSON_ARRAY = "IN (SELECT value FROM json_each(?))"


class SQLiteDialect:
    """SQL rewriting and full text for SQLite (see the module docstring)."""

    locked_from_begin = True

    def index(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Stmt:
        return many(
            "INSERT INTO search_index (rowid, sid, body) VALUES (?, ?, ?)",
            [(key, session_id, text) for key, text in bodies],
        )

    def search(self, session_id: str, terms: Sequence[str], after: int, limit: int) -> Stmt | None:
        return all_rows(
            "SELECT h.rowid, p.message_id FROM "
            "(SELECT rowid FROM search_index WHERE search_index MATCH ? AND rowid > ? "
            " ORDER BY rowid LIMIT ?) h "
            "JOIN parts p ON p.id = h.rowid / 2 ORDER BY h.rowid",
            fts_query(session_id, terms),
            after,
            limit,
        )


def fts_query(session_id: str, terms: Sequence[str]) -> str:
    """An FTS5 query: the session's rows holding the terms as a phrase (adjacent,
    in order), the last term as a prefix."""

    def quote(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    phrase = " + ".join(quote(term) for term in terms) + " *"
    return f"sid : {quote(session_id)} AND body : ({phrase})"


@functools.lru_cache(maxsize=1024)
def _prepare(sql: str) -> tuple[str, bool]:
    """The SQLite text of a shared statement, and whether it takes a JSON array."""
    text = sql.replace(" FOR NO KEY UPDATE", "").replace(" FOR UPDATE", "")
    return text.replace(_ARRAY, _JSON_ARRAY), _ARRAY in text


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, begun: bool = False) -> Iterator[None]:
    """One write transaction that waits for (rather than fails on) other writers;
    ``begun``: the caller already holds it (:func:`begin_if_free`)."""
    if not begun:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def begin_if_free(conn: sqlite3.Connection, timeout: float) -> bool:
    """Begin a write transaction if the file's write lock is free at once;
    False, and nothing begun, if another connection holds it."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return True


@contextlib.contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement in it sees the same snapshot of the file."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def run(conn: sqlite3.Connection, steps: Steps[T]) -> T:
    """Drive an algorithm to its end on ``conn``; its return value."""
    result: Any = None
    try:
        while True:  # the algorithm's next statement, given the last one's result
            result = _execute(conn, steps.send(result))
    except StopIteration as done:
        outcome: T = done.value
        return outcome


def _execute(conn: sqlite3.Connection, stmt: Stmt) -> Any:
    sql, takes_array = _prepare(stmt.sql)
    if stmt.fetch == "many":
        conn.executemany(sql, stmt.params)
        return None
    params = stmt.params
    if takes_array:
        params = [json.dumps(p) if isinstance(p, list) else p for p in params]
    cursor = conn.execute(sql, params)
    if stmt.fetch == "none":
        return None
    if stmt.fetch == "rowcount":
        return cursor.rowcount
    if stmt.fetch == "new_id":
        return cursor.lastrowid  # cheaper than RETURNING on SQLite
    if stmt.fetch == "all":
        return cursor.fetchall()
    row = cursor.fetchone()
    if stmt.fetch == "one" or row is None:
        return row
    return row[0]
