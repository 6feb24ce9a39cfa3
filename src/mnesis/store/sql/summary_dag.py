"""The summary DAG: committing nodes, tombstones, pins, and walking the DAG.

A summary replaces a contiguous run of the context view; its sources stay
stored and reachable through ``summary_sources``. Writes lock the session row
first (see :mod:`mnesis.store.sql.log`) and, only when the view changed, count
a rewrite: a new context version and one more rewrite, so copies of the view
are re-read whole.
"""

from __future__ import annotations

import time

from mnesis.errors import InvalidInputError
from mnesis.store.records import AppendOutcome, NewSummary, SummaryRecord
from mnesis.store.sql.log import count_rewrite, lock_session
from mnesis.store.sql.rows import SUMMARY_COLUMNS, span_start, summary_from_row
from mnesis.store.sql.statements import Steps, all_rows, execute, many, one, rowcount, value


def commit_summary(session_id: str, s: NewSummary) -> Steps[AppendOutcome]:
    """Insert the node and swap it in for its sources."""
    before, rewrites = yield from lock_session(session_id)
    if not s.sources:
        raise InvalidInputError("a summary must cover at least one item")
    source_kind = "message" if s.kind == "leaf" else "summary"
    items = yield all_rows(
        "SELECT position, kind, ref_id FROM context_items WHERE session_id = ? ORDER BY position",
        session_id,
    )
    start = span_start(items, s, session_id)
    yield execute(
        "INSERT INTO summaries (id, session_id, kind, depth, level_used, text, token_count, "
        "first_seq, last_seq, message_count, model, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    yield many(
        "INSERT INTO summary_sources (summary_id, ord, source_kind, source_id) VALUES (?, ?, ?, ?)",
        [(s.id, i, source_kind, ref) for i, ref in enumerate(s.sources)],
    )
    positions = [int(items[i][0]) for i in range(start, start + len(s.sources))]
    yield execute(
        "DELETE FROM context_items WHERE session_id = ? AND position = ANY(?)",
        session_id,
        positions,
    )
    yield execute(
        "INSERT INTO context_items (session_id, position, kind, ref_id) "
        "VALUES (?, ?, 'summary', ?)",
        session_id,
        positions[0],
        s.id,
    )
    yield from count_rewrite(session_id, time.time())
    return rewritten(before, rewrites)


def rewritten(version_before: int, rewrites_before: int) -> AppendOutcome:
    """The outcome of a write that rewrote the context view."""
    return AppendOutcome((), version_before, version_before + 1, rewrites=rewrites_before + 1)


def unchanged(version: int, rewrites: int) -> AppendOutcome:
    """The outcome of a write that left the context view as it was."""
    return AppendOutcome((), version, version, rewrites=rewrites)


def prune_tool_outputs(session_id: str, tool_call_ids: tuple[str, ...]) -> Steps[AppendOutcome]:
    """Mark completed tool outputs pruned; ids already pruned are left alone."""
    before, rewrites = yield from lock_session(session_id)
    now = time.time()
    changed = yield rowcount(
        "UPDATE parts SET pruned_at = ? WHERE session_id = ? AND tool_call_id = ANY(?) "
        "AND pruned_at IS NULL AND tool_status IN ('completed', 'error')",
        now,
        session_id,
        list(tool_call_ids),
    )
    if not changed:
        return unchanged(before, rewrites)
    yield from count_rewrite(session_id, now)
    return rewritten(before, rewrites)


def pin(session_id: str, message_id: str) -> Steps[AppendOutcome]:
    """Pin a complete message of the session that is still verbatim in the context."""
    before, rewrites = yield from lock_session(session_id)
    status = yield value(
        "SELECT status FROM messages WHERE id = ? AND session_id = ?", message_id, session_id
    )
    if status is None:
        raise InvalidInputError(f"no message {message_id!r} in session {session_id}")
    if status != "complete":
        raise InvalidInputError(f"message {message_id!r} is {status}; only complete ones pin")
    in_view = yield value(
        "SELECT 1 FROM context_items WHERE session_id = ? AND kind = 'message' AND ref_id = ?",
        session_id,
        message_id,
    )
    if in_view is None:
        raise InvalidInputError(
            f"message {message_id!r} is already summarised; pin messages while they are verbatim"
        )
    now = time.time()
    inserted = yield rowcount(
        "INSERT INTO pins (session_id, message_id, pinned_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        session_id,
        message_id,
        now,
    )
    if not inserted:
        return unchanged(before, rewrites)
    yield from count_rewrite(session_id, now)
    return rewritten(before, rewrites)


def is_pinned(session_id: str, message_id: str) -> Steps[bool]:
    """Whether the message is pinned."""
    found = yield value(
        "SELECT 1 FROM pins WHERE session_id = ? AND message_id = ?", session_id, message_id
    )
    return found is not None


def get_summary(summary_id: str) -> Steps[SummaryRecord]:
    """One node; ``KeyError`` if unknown."""
    row = yield from _summary_row(summary_id)
    return summary_from_row(row)


def _summary_row(summary_id: str) -> Steps[tuple[object, ...]]:
    row = yield one(f"SELECT {SUMMARY_COLUMNS} FROM summaries s WHERE s.id = ?", summary_id)  # noqa: S608
    if row is None:
        raise KeyError(f"no summary with id {summary_id!r}")
    return tuple(row)


def summary_sources(summary_id: str) -> Steps[list[tuple[str, str]]]:
    """``(kind, id)`` of what a node covers, in order."""
    yield from _summary_row(summary_id)
    rows = yield all_rows(
        "SELECT source_kind, source_id FROM summary_sources WHERE summary_id = ? ORDER BY ord",
        summary_id,
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def covering_summaries(session_id: str, message_ids: tuple[str, ...]) -> Steps[dict[str, str]]:
    """For each message, the summary node of the session's active context that covers
    it (the top of its chain: a node nothing condensed further is in the context)."""
    if not message_ids:
        return {}
    rows = yield all_rows(
        "WITH RECURSIVE up(msg, node) AS ("
        " SELECT ss.source_id, ss.summary_id FROM summary_sources ss"
        " JOIN summaries s ON s.id = ss.summary_id"
        " WHERE s.session_id = ? AND ss.source_id = ANY(?)"
        " UNION ALL"
        " SELECT up.msg, ss.summary_id FROM up JOIN summary_sources ss ON ss.source_id = up.node"
        ") SELECT up.msg, up.node FROM up WHERE NOT EXISTS"
        " (SELECT 1 FROM summary_sources top WHERE top.source_id = up.node)",
        session_id,
        list(message_ids),
    )
    return {str(r[0]): str(r[1]) for r in rows}


def summary_message_ids(summary_id: str) -> Steps[list[str]]:
    """Every message under a node, recursively, in sequence order."""
    yield from _summary_row(summary_id)
    rows = yield all_rows(
        "WITH RECURSIVE down(kind, id) AS ("
        " SELECT source_kind, source_id FROM summary_sources WHERE summary_id = ?"
        " UNION ALL"
        " SELECT ss.source_kind, ss.source_id FROM down"
        " JOIN summary_sources ss ON ss.summary_id = down.id WHERE down.kind = 'summary'"
        ") SELECT m.id FROM down JOIN messages m ON m.id = down.id"
        " WHERE down.kind = 'message' ORDER BY m.seq",
        summary_id,
    )
    return [str(r[0]) for r in rows]


def parent_of(node_id: str) -> Steps[str | None]:
    """The summary node that directly covers a message or a summary, if any."""
    found = yield value("SELECT summary_id FROM summary_sources WHERE source_id = ?", node_id)
    return None if found is None else str(found)
