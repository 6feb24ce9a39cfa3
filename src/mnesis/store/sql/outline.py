"""The session outline: its history as numbers and times, in a few plain reads.

No part's JSON is parsed: messages come from their own rows, tool calls from
the tool-call index on parts, so a 20,000-turn session outlines in a fraction
of the time its messages take to load.
"""

from __future__ import annotations

from mnesis.errors import SessionNotFoundError
from mnesis.models.results import TurnSnapshot
from mnesis.store.outline import MessageOutline, SessionOutline, ToolOutline, TurnOutline
from mnesis.store.sql.rows import SUMMARY_COLUMNS, summary_from_row
from mnesis.store.sql.statements import Steps, all_rows, value


def session_outline(session_id: str) -> Steps[SessionOutline]:
    """The session's outline; ``SessionNotFoundError`` if there is no such session."""
    found = yield value("SELECT 1 FROM sessions WHERE id = ?", session_id)
    if found is None:
        raise SessionNotFoundError(session_id)
    message_rows = yield all_rows(
        "SELECT id, seq, role, status, created_at, token_count FROM messages "
        "WHERE session_id = ? ORDER BY seq",
        session_id,
    )
    tool_rows = yield all_rows(
        "SELECT message_id, tool_call_id, token_count, result_token_count, completed_at, "
        "pruned_at, tool_output IS NOT NULL OR tool_error IS NOT NULL FROM parts "
        "WHERE session_id = ? AND tool_call_id IS NOT NULL ORDER BY id",
        session_id,
    )
    turn_rows = yield all_rows(
        "SELECT snapshot_json, created_at FROM turns WHERE session_id = ? ORDER BY turn_index",
        session_id,
    )
    summary_rows = yield all_rows(
        f"SELECT {SUMMARY_COLUMNS} FROM summaries s WHERE s.session_id = ? "  # noqa: S608
        "ORDER BY s.created_at, s.id",
        session_id,
    )
    source_rows = yield all_rows(
        "SELECT ss.summary_id, ss.source_id FROM summary_sources ss "
        "JOIN summaries s ON s.id = ss.summary_id WHERE s.session_id = ? "
        "ORDER BY ss.summary_id, ss.ord",
        session_id,
    )
    pin_rows = yield all_rows(
        "SELECT message_id, pinned_at FROM pins WHERE session_id = ?", session_id
    )
    sources: dict[str, list[str]] = {}
    for summary_id, source_id in source_rows:
        sources.setdefault(str(summary_id), []).append(str(source_id))
    return SessionOutline(
        messages=[
            MessageOutline(str(r[0]), int(r[1]), r[2], str(r[3]), float(r[4]), int(r[5]))
            for r in message_rows
        ],
        tools=[
            ToolOutline(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]),
                None if r[4] is None else float(r[4]),
                None if r[5] is None else float(r[5]),
                bool(r[6]),
            )
            for r in tool_rows
        ],
        turns=[TurnOutline(TurnSnapshot.model_validate_json(r[0]), float(r[1])) for r in turn_rows],
        summaries=[summary_from_row(r) for r in summary_rows],
        sources={k: tuple(v) for k, v in sources.items()},
        pins={str(r[0]): float(r[1]) for r in pin_rows},
    )
