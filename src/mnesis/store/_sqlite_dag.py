"""SQLite statements for the summary DAG, tombstones and pins.

Each function runs inside a transaction the caller opened; the caller is
:class:`mnesis.store.sqlite.SQLiteStore`, which keeps the one-thread and
one-transaction-per-call rules.
"""

from __future__ import annotations

import sqlite3
import time

from mnesis.errors import InvalidInputError, SessionNotFoundError
from mnesis.store.base import NewSummary
from mnesis.store.rows import span_start


def _version(conn: sqlite3.Connection, session_id: str) -> int:
    row = conn.execute(
        "SELECT context_version FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise SessionNotFoundError(session_id)
    return int(row[0])


def _bump(conn: sqlite3.Connection, session_id: str) -> None:
    conn.execute(
        "UPDATE sessions SET context_version = context_version + 1, updated_at = ? WHERE id = ?",
        (time.time(), session_id),
    )


def commit_summary(conn: sqlite3.Connection, session_id: str, s: NewSummary) -> tuple[int, int]:
    """Insert the node and swap it in for its sources; returns (version before, after)."""
    before = _version(conn, session_id)
    if not s.sources:
        raise InvalidInputError("a summary must cover at least one item")
    source_kind = "message" if s.kind == "leaf" else "summary"
    items = conn.execute(
        "SELECT position, kind, ref_id FROM context_items WHERE session_id = ? ORDER BY position",
        (session_id,),
    ).fetchall()
    start = span_start(items, s, session_id)
    conn.execute(
        "INSERT INTO summaries (id, session_id, kind, depth, level_used, text, token_count, "
        "first_seq, last_seq, message_count, model, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
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
        ),
    )
    conn.executemany(
        "INSERT INTO summary_sources (summary_id, ord, source_kind, source_id) VALUES (?, ?, ?, ?)",
        [(s.id, i, source_kind, ref) for i, ref in enumerate(s.sources)],
    )
    positions = [items[i][0] for i in range(start, start + len(s.sources))]
    conn.executemany(
        "DELETE FROM context_items WHERE session_id = ? AND position = ?",
        [(session_id, p) for p in positions],
    )
    conn.execute(
        "INSERT INTO context_items (session_id, position, kind, ref_id) "
        "VALUES (?, ?, 'summary', ?)",
        (session_id, positions[0], s.id),
    )
    _bump(conn, session_id)
    return before, before + 1


def prune_tool_outputs(
    conn: sqlite3.Connection, session_id: str, tool_call_ids: tuple[str, ...]
) -> tuple[int, int]:
    """Mark completed tool outputs pruned; ids already pruned are left alone."""
    before = _version(conn, session_id)
    now = time.time()
    changed = 0
    for call_id in tool_call_ids:
        changed += conn.execute(
            "UPDATE parts SET pruned_at = ? WHERE session_id = ? AND tool_call_id = ? "
            "AND pruned_at IS NULL AND tool_status IN ('completed', 'error')",
            (now, session_id, call_id),
        ).rowcount
    if not changed:
        return before, before
    _bump(conn, session_id)
    return before, before + 1


def pin(conn: sqlite3.Connection, session_id: str, message_id: str) -> tuple[int, int]:
    """Pin a complete message of the session that is still verbatim in the context."""
    before = _version(conn, session_id)
    row = conn.execute(
        "SELECT status FROM messages WHERE id = ? AND session_id = ?", (message_id, session_id)
    ).fetchone()
    if row is None:
        raise InvalidInputError(f"no message {message_id!r} in session {session_id}")
    if row[0] != "complete":
        raise InvalidInputError(f"message {message_id!r} is {row[0]}; only complete ones pin")
    in_view = conn.execute(
        "SELECT 1 FROM context_items WHERE session_id = ? AND kind = 'message' AND ref_id = ?",
        (session_id, message_id),
    ).fetchone()
    if not in_view:
        raise InvalidInputError(
            f"message {message_id!r} is already summarised; pin messages while they are verbatim"
        )
    inserted = conn.execute(
        "INSERT OR IGNORE INTO pins (session_id, message_id, pinned_at) VALUES (?, ?, ?)",
        (session_id, message_id, time.time()),
    ).rowcount
    if not inserted:
        return before, before
    _bump(conn, session_id)
    return before, before + 1
