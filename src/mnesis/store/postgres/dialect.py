"""How the shared statements run on PostgreSQL through asyncpg.

The shared SQL's ``?`` placeholders become ``$1..$n`` (once per statement
text, cached); row-lock clauses and ``= ANY(?)`` arrays are PostgreSQL's own
and stay. Full text is a ``tsvector`` per chunk of a body in ``search_index``,
built from the words SQLite's tokenizer would see (:mod:`.text`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from mnesis.store.postgres.text import tsquery, tsvector_chunks
from mnesis.store.sql.statements import Steps, Stmt, all_rows, execute, many

T = TypeVar("T")


class PostgresDialect:
    """SQL rewriting and full text for PostgreSQL (see the module docstring)."""

    locked_from_begin = False

    def index(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        yield many(
            "INSERT INTO search_index (key, chunk, session_id, tsv) VALUES (?, ?, ?, ?::tsvector)",
            [
                (key, n, session_id, vector)
                for key, text in bodies
                for n, vector in enumerate(tsvector_chunks(text))
            ],
        )

    def search(
        self, session_id: str, terms: Sequence[str], after: int, limit: int
    ) -> Steps[list[Any]]:
        query = tsquery(terms)
        if query is None:
            return []
        rows: list[Any] = yield all_rows(
            "SELECT h.key, p.message_id FROM "
            "(SELECT DISTINCT key FROM search_index WHERE session_id = ? AND key > ? "
            " AND tsv @@ ?::tsquery ORDER BY key LIMIT ?) h "
            "JOIN parts p ON p.id = h.key / 2 ORDER BY h.key",
            session_id,
            after,
            query,
            limit,
        )
        return rows

    def unindex(self, session_id: str, bodies: Sequence[tuple[int, str]]) -> Steps[None]:
        yield execute(
            "DELETE FROM search_index WHERE session_id = ? AND key = ANY(?)",
            session_id,
            [key for key, _ in bodies],
        )


@functools.lru_cache(maxsize=1024)
def numbered_placeholders(sql: str) -> str:
    """``?`` outside string literals as ``$1``, ``$2``, ... in order."""
    out: list[str] = []
    count = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            count += 1
            out.append(f"${count}")
        else:
            out.append(ch)
    return "".join(out)


async def run(conn: Any, steps: Steps[T]) -> T:
    """Drive an algorithm to its end on an asyncpg connection; its return value."""
    result: Any = None
    try:
        while True:
            result = await _execute(conn, steps.send(result))
    except StopIteration as done:
        outcome: T = done.value
        return outcome


async def _execute(conn: Any, stmt: Stmt) -> Any:
    sql = numbered_placeholders(stmt.sql)
    if stmt.fetch == "many":
        await conn.executemany(sql, stmt.params)
        return None
    if stmt.fetch == "none":
        await conn.execute(sql, *stmt.params)
        return None
    if stmt.fetch == "rowcount":
        status = await conn.execute(sql, *stmt.params)  # e.g. "UPDATE 3"
        return int(status.rsplit(" ", 1)[-1])
    if stmt.fetch == "new_id":
        return await conn.fetchval(numbered_placeholders(stmt.sql + " RETURNING id"), *stmt.params)
    if stmt.fetch == "value":
        return await conn.fetchval(sql, *stmt.params)
    if stmt.fetch == "one":
        row = await conn.fetchrow(sql, *stmt.params)
        return None if row is None else tuple(row)
    return [tuple(row) for row in await conn.fetch(sql, *stmt.params)]
