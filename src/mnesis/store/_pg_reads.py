"""PostgreSQL reads that rebuild messages and the context view from joined rows."""

from __future__ import annotations

from typing import Any

from mnesis.errors import SessionNotFoundError
from mnesis.models.message import Message, MessagePart, MessageWithParts, ToolPart
from mnesis.store.base import PRUNED_MARKER, PRUNED_MARKER_TOKENS, ContextEntry
from mnesis.store.sqlite import (
    _PART_COLUMNS,
    _SUMMARY_COLUMNS,
    _message_from_row,
    _part_from_row,
    _summary_from_row,
)


def group(rows: list[Any]) -> list[MessageWithParts]:
    out: list[MessageWithParts] = []
    current: Message | None = None
    parts: list[MessagePart] = []
    for row in rows:
        if current is None or current.id != row[0]:
            if current is not None:
                out.append(MessageWithParts(message=current, parts=parts))
            current = _message_from_row(tuple(row))
            parts = []
        if row[16] is not None:
            parts.append(_part_from_row(tuple(row), 16))
    if current is not None:
        out.append(MessageWithParts(message=current, parts=parts))
    return out


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
            _summary_from_row(tuple(x))
            for x in await conn.fetch(
                f"SELECT {_SUMMARY_COLUMNS} FROM context_items ci "  # noqa: S608
                "JOIN summaries s ON s.id = ci.ref_id "
                "WHERE ci.session_id = $1 AND ci.kind = 'summary'",
                session_id,
            )
        )
    }
    rows = await conn.fetch(
        f"SELECT ci.position, ci.kind, ci.ref_id, m.role, m.seq, {_PART_COLUMNS} "  # noqa: S608
        "FROM context_items ci "
        "LEFT JOIN messages m ON m.id = ci.ref_id AND ci.kind = 'message' "
        "LEFT JOIN parts p ON p.message_id = m.id "
        "WHERE ci.session_id = $1 ORDER BY ci.position, p.idx",
        session_id,
    )
    entries: list[ContextEntry] = []
    groups: list[tuple[tuple[Any, ...], list[MessagePart], list[int]]] = []
    for r in rows:
        if not groups or groups[-1][0][0] != r[0]:
            groups.append(((r[0], r[1], r[2], r[3], r[4]), [], []))
        if r[5] is not None:
            _, parts, tokens = groups[-1]
            part = _part_from_row(tuple(r), 5)
            if r[11] is not None and isinstance(part, ToolPart) and part.has_result:
                part = part.model_copy(update={"output": PRUNED_MARKER, "error_message": None})
                tokens.append(int(r[9]) + PRUNED_MARKER_TOKENS)
            else:
                tokens.append(int(r[9]) + int(r[10]))
            parts.append(part)
    for (_, kind, ref_id, role, seq), parts, tokens in groups:
        if kind == "summary":
            summary = summaries[ref_id]
            entries.append(
                ContextEntry(
                    "summary",
                    ref_id,
                    "user",
                    (),
                    (summary.token_count,),
                    seq=summary.first_seq,
                    summary=summary,
                )
            )
        else:
            entries.append(
                ContextEntry(
                    "message",
                    ref_id,
                    role,
                    tuple(parts),
                    tuple(tokens),
                    pinned=ref_id in pinned,
                    seq=int(seq),
                )
            )
    return int(version), entries
