"""PostgreSQL statements for the summary DAG, tombstones, pins, recall and verify.

Each function takes an asyncpg connection inside a transaction the caller
(:class:`mnesis.store.postgres.PostgresStore`) opened; write functions lock the
session row first, so writers of one session queue up instead of racing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mnesis.errors import InvalidInputError, SessionNotFoundError
from mnesis.store import _pg_text
from mnesis.store.base import NewSummary
from mnesis.store.invariants import SessionRows
from mnesis.store.rows import span_start


async def lock_version(conn: Any, session_id: str) -> int:
    """Lock the session's row for this transaction; its context version.

    ``FOR NO KEY UPDATE`` serialises writers of the session (it conflicts with
    itself) but not the foreign-key checks of rows that merely refer to it.
    """
    version = await conn.fetchval(
        "SELECT context_version FROM sessions WHERE id = $1 FOR NO KEY UPDATE", session_id
    )
    if version is None:
        raise SessionNotFoundError(session_id)
    return int(version)


async def bump(conn: Any, session_id: str) -> None:
    await conn.execute(
        "UPDATE sessions SET context_version = context_version + 1, updated_at = $1 WHERE id = $2",
        time.time(),
        session_id,
    )


async def index_text(conn: Any, key: int, session_id: str, text: str) -> None:
    """Add one body to the full-text index under ``key``."""
    await conn.executemany(
        "INSERT INTO search_index (key, chunk, session_id, tsv) VALUES ($1, $2, $3, $4::tsvector)",
        [(key, n, session_id, vector) for n, vector in enumerate(_pg_text.tsvector_chunks(text))],
    )


# -- the summary DAG, tombstones, pins -----------------------------------------


async def commit_summary(conn: Any, session_id: str, s: NewSummary) -> tuple[int, int]:
    """Insert the node and swap it in for its sources; returns (version before, after)."""
    before = await lock_version(conn, session_id)
    if not s.sources:
        raise InvalidInputError("a summary must cover at least one item")
    source_kind = "message" if s.kind == "leaf" else "summary"
    items = await conn.fetch(
        "SELECT position, kind, ref_id FROM context_items WHERE session_id = $1 ORDER BY position",
        session_id,
    )
    start = span_start(items, s, session_id)
    await conn.execute(
        "INSERT INTO summaries (id, session_id, kind, depth, level_used, text, token_count, "
        "first_seq, last_seq, message_count, model, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        s.id,
        session_id,
        s.kind,
        s.depth,
        s.level_used,
        s.text,
        s.token_count,
        s.first_seq,
        s.last_seq,
        s.message_count,
        s.model,
        s.created_at,
    )
    await conn.executemany(
        "INSERT INTO summary_sources (summary_id, ord, source_kind, source_id) "
        "VALUES ($1, $2, $3, $4)",
        [(s.id, i, source_kind, ref) for i, ref in enumerate(s.sources)],
    )
    positions = [int(items[i][0]) for i in range(start, start + len(s.sources))]
    await conn.execute(
        "DELETE FROM context_items WHERE session_id = $1 AND position = ANY($2::bigint[])",
        session_id,
        positions,
    )
    await conn.execute(
        "INSERT INTO context_items (session_id, position, kind, ref_id) "
        "VALUES ($1, $2, 'summary', $3)",
        session_id,
        positions[0],
        s.id,
    )
    await bump(conn, session_id)
    return before, before + 1


async def prune_tool_outputs(
    conn: Any, session_id: str, tool_call_ids: tuple[str, ...]
) -> tuple[int, int]:
    """Mark completed tool outputs pruned; ids already pruned are left alone."""
    before = await lock_version(conn, session_id)
    status = await conn.execute(
        "UPDATE parts SET pruned_at = $1 WHERE session_id = $2 "
        "AND tool_call_id = ANY($3::text[]) "
        "AND pruned_at IS NULL AND tool_status IN ('completed', 'error')",
        time.time(),
        session_id,
        list(tool_call_ids),
    )
    if not int(status.split()[-1]):
        return before, before
    await bump(conn, session_id)
    return before, before + 1


async def pin(conn: Any, session_id: str, message_id: str) -> tuple[int, int]:
    """Pin a complete message of the session that is still verbatim in the context."""
    before = await lock_version(conn, session_id)
    status = await conn.fetchval(
        "SELECT status FROM messages WHERE id = $1 AND session_id = $2", message_id, session_id
    )
    if status is None:
        raise InvalidInputError(f"no message {message_id!r} in session {session_id}")
    if status != "complete":
        raise InvalidInputError(f"message {message_id!r} is {status}; only complete ones pin")
    in_view = await conn.fetchval(
        "SELECT 1 FROM context_items WHERE session_id = $1 AND kind = 'message' AND ref_id = $2",
        session_id,
        message_id,
    )
    if not in_view:
        raise InvalidInputError(
            f"message {message_id!r} is already summarised; pin messages while they are verbatim"
        )
    done = await conn.execute(
        "INSERT INTO pins (session_id, message_id, pinned_at) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        session_id,
        message_id,
        time.time(),
    )
    if not int(done.split()[-1]):
        return before, before
    await bump(conn, session_id)
    return before, before + 1


# -- recall -------------------------------------------------------------------


async def search(
    conn: Any, session_id: str, terms: Sequence[str], after: int, limit: int
) -> list[tuple[int, str]]:
    """Index hits after key ``after``: (key, message id), in storage order."""
    query = _pg_text.tsquery(terms)
    if query is None:
        return []
    rows = await conn.fetch(
        "SELECT h.key, p.message_id FROM "
        "(SELECT DISTINCT key FROM search_index WHERE session_id = $1 AND key > $2 "
        " AND tsv @@ $3::tsquery ORDER BY key LIMIT $4) h "
        "JOIN parts p ON p.id = h.key / 2 ORDER BY h.key",
        session_id,
        after,
        query,
        limit,
    )
    return [(int(r[0]), str(r[1])) for r in rows]


async def covering_summaries(conn: Any, message_ids: Sequence[str]) -> dict[str, str]:
    """For each message, the summary node in the active context that covers it."""
    if not message_ids:
        return {}
    rows = await conn.fetch(
        "WITH RECURSIVE up(msg, node) AS ("
        " SELECT source_id, summary_id FROM summary_sources WHERE source_id = ANY($1::text[])"
        " UNION ALL"
        " SELECT up.msg, ss.summary_id FROM up JOIN summary_sources ss ON ss.source_id = up.node"
        ") SELECT up.msg, up.node FROM up WHERE NOT EXISTS"
        " (SELECT 1 FROM summary_sources top WHERE top.source_id = up.node)",
        list(message_ids),
    )
    return {str(r[0]): str(r[1]) for r in rows}


async def summary_message_ids(conn: Any, summary_id: str) -> list[str]:
    """Every message under a node, recursively, in sequence order."""
    rows = await conn.fetch(
        "WITH RECURSIVE down(kind, id) AS ("
        " SELECT source_kind, source_id FROM summary_sources WHERE summary_id = $1"
        " UNION ALL"
        " SELECT ss.source_kind, ss.source_id FROM down"
        " JOIN summary_sources ss ON ss.summary_id = down.id WHERE down.kind = 'summary'"
        ") SELECT m.id FROM down JOIN messages m ON m.id = down.id"
        " WHERE down.kind = 'message' ORDER BY m.seq",
        summary_id,
    )
    return [str(r[0]) for r in rows]


# -- invariants -----------------------------------------------------------------


async def session_rows(conn: Any, sid: str) -> SessionRows:
    """Everything :func:`mnesis.store.invariants.check_session` needs about one session."""
    mismatches = [
        f"message {r[0]} token count {r[1]} != parts {r[2]}"
        for r in await conn.fetch(
            "SELECT m.id, m.token_count, "
            "COALESCE(SUM(p.token_count + p.result_token_count), 0) "
            "FROM messages m LEFT JOIN parts p ON p.message_id = m.id "
            "WHERE m.session_id = $1 GROUP BY m.id ORDER BY m.seq",
            sid,
        )
        if r[1] != r[2]
    ]
    sources: dict[str, list[tuple[str, str]]] = {}
    for r in await conn.fetch(
        "SELECT ss.summary_id, ss.source_kind, ss.source_id FROM summary_sources ss "
        "JOIN summaries s ON s.id = ss.summary_id WHERE s.session_id = $1 "
        "ORDER BY ss.summary_id, ss.ord",
        sid,
    ):
        sources.setdefault(r[0], []).append((r[1], r[2]))
    turns = await conn.fetchval("SELECT COUNT(*) FROM turns WHERE session_id = $1", sid)
    turn_count = await conn.fetchval("SELECT turn_count FROM sessions WHERE id = $1", sid)
    messages = await conn.fetch(
        "SELECT id, seq, status FROM messages WHERE session_id = $1 ORDER BY seq", sid
    )
    context = await conn.fetch(
        "SELECT kind, ref_id FROM context_items WHERE session_id = $1 ORDER BY position", sid
    )
    summaries = await conn.fetch(
        "SELECT id, kind, first_seq, last_seq, message_count FROM summaries WHERE session_id = $1",
        sid,
    )
    pins = await conn.fetch("SELECT message_id FROM pins WHERE session_id = $1", sid)
    return SessionRows(
        session_id=sid,
        messages=[(r[0], int(r[1]), r[2]) for r in messages],
        context=[(r[0], r[1]) for r in context],
        summaries={r[0]: (r[1], int(r[2]), int(r[3]), int(r[4])) for r in summaries},
        sources=sources,
        pins={r[0] for r in pins},
        turn_count=int(turn_count),
        snapshots=int(turns),
        token_mismatches=mismatches,
    )


async def orphan_parts(conn: Any, session_id: str | None) -> list[str]:
    """Problems for parts that belong to no message."""
    rows = await conn.fetch(
        "SELECT p.id FROM parts p LEFT JOIN messages m ON m.id = p.message_id "
        "WHERE m.id IS NULL AND ($1::text IS NULL OR p.session_id = $1) ORDER BY p.id LIMIT 10",
        session_id,
    )
    return [f"part {r[0]} belongs to no message" for r in rows]
