"""PostgreSQL reads that rebuild messages and the context view from joined rows."""

from __future__ import annotations

from typing import Any

from mnesis.errors import SessionNotFoundError
from mnesis.models.message import MessageWithParts
from mnesis.store.base import ContextEntry
from mnesis.store.rows import (
    PART_COLUMNS,
    SUMMARY_COLUMNS,
    context_entries_from_rows,
    group_messages,
    summary_from_row,
)


def group(rows: list[Any]) -> list[MessageWithParts]:
    return group_messages(tuple(r) for r in rows)


async def context_entries(conn: Any, session_id: str) -> tuple[int, list[ContextEntry]]:
    version = await conn.fetchval("SELECT context_version FROM sessions WHERE id = $1", session_id)
    if version is None:
        raise SessionNotFoundError(session_id)
    pinned = {
        r[0]
        for r in await conn.fetch("SELECT message_id FROM pins WHERE session_id = $1", session_id)
    }
    summaries = {
        s.id: s
        for s in (
            summary_from_row(tuple(x))
            for x in await conn.fetch(
                f"SELECT {SUMMARY_COLUMNS} FROM context_items ci "  # noqa: S608
                "JOIN summaries s ON s.id = ci.ref_id "
                "WHERE ci.session_id = $1 AND ci.kind = 'summary'",
                session_id,
            )
        )
    }
    rows = await conn.fetch(
        f"SELECT ci.position, ci.kind, ci.ref_id, m.role, m.seq, {PART_COLUMNS} "  # noqa: S608
        "FROM context_items ci "
        "LEFT JOIN messages m ON m.id = ci.ref_id AND ci.kind = 'message' "
        "LEFT JOIN parts p ON p.message_id = m.id "
        "WHERE ci.session_id = $1 ORDER BY ci.position, p.idx",
        session_id,
    )
    entries = context_entries_from_rows((tuple(r) for r in rows), summaries, pinned)
    return int(version), entries
