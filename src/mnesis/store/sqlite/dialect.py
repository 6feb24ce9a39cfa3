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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import regex

from mnesis.store.sql.statements import Steps, Stmt, all_rows, execute, many

T = TypeVar("T")

_ARRAY = "= ANY(?)"
_JSON_ARRAY = "IN (SELECT value FROM json_each(?))"


class SQLiteDialect:
    """SQL rewriting and full text for SQLite (see the module docstring)."""

    locked_from_begin = True

    def index(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        yield many(
            "INSERT INTO search_index (rowid, sid, body) VALUES (?, ?, ?)",
            [(key, session_id, text) for key, text in bodies],
        )
        words = index_words(text for _, text in bodies)
        if words:
            yield execute(_ADD_WORDS, words)

    def search(
        self, session_id: str, terms: Sequence[str], after: int, limit: int
    ) -> Steps[list[Any]]:
        if not terms:
            return []
        *phrase, last = terms
        if not (last.isascii() and _INDEX_WORD.fullmatch(last)):
            # The word list holds words as written, FTS5 folds them: only an
            # ASCII word is sure to begin every word FTS5 would match.
            return (yield from self._search(session_id, phrase, last, None, after, limit))
        # The words that begin with the last term, when they are few: FTS5
        # merges a prefix's whole doclist before it can stop at ``limit``
        # (milliseconds for a common word over a big index); exact words stream.
        words = yield all_rows(
            "SELECT word FROM search_words WHERE word >= ? AND word < ? ORDER BY word LIMIT ?",
            last,
            last + _LAST_CHAR,
            _MAX_EXPANSION + 1,
        )
        if not words:
            return []
        completions = None if len(words) > _MAX_EXPANSION else [w for (w,) in words]
        return (yield from self._search(session_id, phrase, last, completions, after, limit))

    def unindex(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        # A contentless FTS5 table forgets a row only through its 'delete' command.
        yield many(
            "INSERT INTO search_index (search_index, rowid, sid, body) VALUES ('delete', ?, ?, ?)",
            [(key, session_id, text) for key, text in bodies],
        )
        yield from forget_words(text for _, text in bodies)
        # Only erasure unindexes. 'delete' records that a row is gone while its words
        # stay in older index segments, and SQLite keeps deleted cells in their pages:
        # zero what this connection deletes from now on, and merge the index.
        yield execute("PRAGMA secure_delete = ON")
        yield execute("INSERT INTO search_index (search_index) VALUES ('optimize')")

    @staticmethod
    def _search(
        session_id: str,
        phrase: Sequence[str],
        last: str,
        completions: Sequence[str] | None,
        after: int,
        limit: int,
    ) -> Steps[list[Any]]:
        rows: list[Any] = yield all_rows(
            "SELECT h.rowid, p.message_id FROM "
            "(SELECT rowid FROM search_index WHERE search_index MATCH ? AND rowid > ? "
            " ORDER BY rowid LIMIT ?) h "
            "JOIN parts p ON p.id = h.rowid / 2 ORDER BY h.rowid",
            fts_query(session_id, phrase, last, completions),
            after,
            limit,
        )
        return rows


_MAX_EXPANSION = 128
_LAST_CHAR = chr(0x10FFFF)
_INDEX_WORD = regex.compile(r"\w+")


_ADD_WORDS = "INSERT OR IGNORE INTO search_words (word) SELECT value FROM json_each(?)"
_FORGET_WORDS = (
    "DELETE FROM search_words WHERE word = ? AND NOT EXISTS "
    "(SELECT 1 FROM search_index WHERE search_index MATCH ?)"
)
_MAX_KNOWN_WORDS = 200_000


def index_words(texts: Iterable[str]) -> set[str]:
    """The distinct lower-cased words of ``texts``, as grep splits a pattern."""
    words: set[str] = set()
    for text in texts:
        words.update(_INDEX_WORD.findall(text))
    return {word.lower() for word in words}


def forget_words(texts: Iterable[str]) -> Steps[None]:
    """Drop the words of ``texts`` that no indexed body holds any more (after an
    erasure): the word list must not remember what was erased."""
    words = index_words(texts)
    if words:
        yield execute(_FORGET_WORDS, words)


class LogConnection(sqlite3.Connection):
    """A connection that remembers which words its commits put in ``search_words``,
    so an append inserts only the words it has not seen (most of them).

    ``search_words_epoch`` counts erasures: a connection whose epoch is behind
    forgets what it knew, since another connection may have dropped those words.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_words: set[str] = set()
        self.pending_words: set[str] = set()
        self.words_epoch: int | None = None


def _add_words(conn: sqlite3.Connection, words: set[str]) -> None:
    """Runs inside the write transaction, so the epoch read cannot go stale."""
    if isinstance(conn, LogConnection):
        (epoch,) = conn.execute("SELECT n FROM search_words_epoch").fetchone()
        if epoch != conn.words_epoch:
            conn.known_words.clear()
            conn.words_epoch = epoch
        words = words - conn.known_words
    if words:
        conn.execute(_ADD_WORDS, (json.dumps(sorted(words), ensure_ascii=False),))
        if isinstance(conn, LogConnection):
            conn.pending_words |= words


def _forget_words(conn: sqlite3.Connection, words: set[str]) -> None:
    conn.executemany(_FORGET_WORDS, [(word, f"body : {_quote(word)}") for word in words])
    conn.execute("UPDATE search_words_epoch SET n = n + 1")


def _settle_words(conn: sqlite3.Connection, *, committed: bool) -> None:
    """After a commit the pending words are known to be stored; after a rollback not."""
    if not isinstance(conn, LogConnection):
        return
    if committed:
        if len(conn.known_words) > _MAX_KNOWN_WORDS:
            conn.known_words.clear()
        conn.known_words |= conn.pending_words
    conn.pending_words.clear()


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def fts_query(
    session_id: str, phrase: Sequence[str], last: str, completions: Sequence[str] | None
) -> str:
    """An FTS5 query: the session's rows holding ``phrase`` then ``last`` (adjacent, in
    order), ``last`` as one of ``completions``, or as a prefix when they are None."""

    head = "".join(_quote(term) + " + " for term in phrase)
    if completions is None:
        body = head + _quote(last) + " *"
    else:
        body = " OR ".join(f"({head}{_quote(word)})" for word in completions)
    return f"sid : {_quote(session_id)} AND body : ({body})"


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
        _settle_words(conn, committed=False)
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    finally:
        _settle_words(conn, committed=not conn.in_transaction)


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
    if stmt.sql is _ADD_WORDS:
        _add_words(conn, stmt.params[0])
        return None
    if stmt.sql is _FORGET_WORDS:
        _forget_words(conn, stmt.params[0])
        return None
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
