"""Statements as values, so an algorithm can be written once and run by either driver.

SQL is written in one form: ``?`` placeholders, ``= ANY(?)`` with a list for
"one of these values", and PostgreSQL's row-lock clauses (``FOR UPDATE``,
``FOR NO KEY UPDATE``) where a writer must queue behind another. Each
backend's ``dialect`` module turns that text into what its database reads
(once per statement text, cached) and drives an algorithm's statements on its
connection; the :class:`Dialect` object supplies the statements that cannot be
shared (full-text indexing and search).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

T = TypeVar("T")

Fetch = Literal["none", "one", "all", "value", "rowcount", "many", "new_id"]


class Stmt(NamedTuple):
    """One statement to run and what to send back to the algorithm.

    ``none``: nothing; ``one``: the first row (a tuple) or None; ``all``: every
    row as tuples; ``value``: the first column of the first row or None;
    ``rowcount``: how many rows changed; ``many``: run once per tuple of
    ``params`` (nothing sent back); ``new_id``: the ``id`` the INSERT gave its row.
    """

    sql: str
    params: Sequence[Any] = ()
    fetch: Fetch = "none"


# An algorithm: yields statements, receives each result, returns its outcome. A driver
# sends None first, then each statement's result, until StopIteration carries the outcome.
Steps = Generator[Stmt, Any, T]


def execute(sql: str, *params: Any) -> Stmt:
    """Run for its effect."""
    return Stmt(sql, params)


def one(sql: str, *params: Any) -> Stmt:
    """The first row, or None."""
    return Stmt(sql, params, "one")


def all_rows(sql: str, *params: Any) -> Stmt:
    """Every row."""
    return Stmt(sql, params, "all")


def value(sql: str, *params: Any) -> Stmt:
    """The first column of the first row, or None."""
    return Stmt(sql, params, "value")


def rowcount(sql: str, *params: Any) -> Stmt:
    """How many rows the statement changed."""
    return Stmt(sql, params, "rowcount")


def new_id(sql: str, *params: Any) -> Stmt:
    """Insert one row; the integer ``id`` the database gave it."""
    return Stmt(sql, params, "new_id")


def many(sql: str, rows: Iterable[Sequence[Any]]) -> Stmt:
    """Run once per row of parameters."""
    return Stmt(sql, list(rows), "many")


class Dialect(Protocol):
    """What truly differs between the SQL backends."""

    locked_from_begin: bool
    """A write transaction holds the database's write lock from its first
    statement (SQLite's ``BEGIN IMMEDIATE``), so one read sees the final state."""

    def index(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        """Add ``(key, text)`` bodies to the session's full-text index.

        A part's own text is keyed ``part_id * 2``, its tool result ``part_id * 2 + 1``.
        """
        ...

    def search(
        self, session_id: str, terms: Sequence[str], after: int, limit: int
    ) -> Steps[list[Any]]:
        """Rows ``(key, message_id)`` of index hits after ``after`` in key order: the
        terms as a phrase, the last a prefix; no rows when no query can match."""
        ...

    def unindex(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        """Remove full-text entries, and every trace of their words: ``bodies`` are the
        ``(key, text)`` that were indexed (an index that can only forget what it
        is told again needs the text)."""
        ...
