"""PostgreSQL writes of the log itself: appending messages and filling tool results.

Each function runs inside the write transaction that
:class:`mnesis.store.postgres.PostgresStore` opened, and locks the session's
row before reading the next sequence number or context position.
"""

from __future__ import annotations

import time
from typing import Any

from mnesis.errors import ToolResultError
from mnesis.models.message import TokenUsage, ToolPart, part_to_json
from mnesis.models.results import TurnSnapshot
from mnesis.store import _pg_sql as _sql
from mnesis.store.base import AppendOutcome, NewMessage, ToolResult, searchable_text
from mnesis.store.rows import INSERT_MESSAGE_COLUMNS, message_params


async def append(
    conn: Any,
    session_id: str,
    messages: tuple[NewMessage, ...],
    usage: TokenUsage | None,
    cost: float,
    snapshot: TurnSnapshot | None,
) -> AppendOutcome:
    """Append messages (complete ones join the context view) and the turn's bookkeeping."""
    now = time.time()
    version_before = await _sql.lock_version(conn, session_id)
    seq = await conn.fetchval(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = $1", session_id
    )
    position = await conn.fetchval(
        "SELECT COALESCE(MAX(position), 0) FROM context_items WHERE session_id = $1",
        session_id,
    )
    seqs: list[int] = []
    joined = 0
    for msg in messages:
        seq += 1
        seqs.append(int(seq))
        await _insert_message(conn, session_id, int(seq), msg)
        if msg.status == "complete":
            position += 1
            joined += 1
            await conn.execute(
                "INSERT INTO context_items (session_id, position, kind, ref_id) "
                "VALUES ($1, $2, 'message', $3)",
                session_id,
                position,
                msg.id,
            )
    u = usage or TokenUsage()
    await conn.execute(
        "UPDATE sessions SET updated_at = $1, input_tokens = input_tokens + $2, "
        "output_tokens = output_tokens + $3, cache_read_tokens = cache_read_tokens + $4, "
        "cache_write_tokens = cache_write_tokens + $5, total_tokens = total_tokens + $6, "
        "cost = cost + $7, turn_count = turn_count + $8, "
        "context_version = context_version + $9 WHERE id = $10",
        now,
        u.input,
        u.output,
        u.cache_read,
        u.cache_write,
        u.effective_total() if usage is not None else 0,
        cost,
        1 if snapshot is not None else 0,
        1 if joined else 0,
        session_id,
    )
    if snapshot is not None:
        await conn.execute(
            "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) "
            "VALUES ($1, $2, $3, $4)",
            session_id,
            snapshot.turn_index,
            snapshot.model_dump_json(),
            now,
        )
    return AppendOutcome(tuple(seqs), version_before, version_before + (1 if joined else 0))


async def _insert_message(conn: Any, session_id: str, seq: int, msg: NewMessage) -> None:
    """One message row, its parts, and their full-text index entries."""
    await conn.execute(
        f"INSERT INTO messages ({INSERT_MESSAGE_COLUMNS}) "  # noqa: S608
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        *message_params(session_id, seq, msg),
    )
    for idx, new in enumerate(msg.parts):
        part = new.part
        tool = part if isinstance(part, ToolPart) else None
        call = (
            tool.model_copy(update={"output": None, "error_message": None})
            if tool is not None
            else part
        )
        part_id = await conn.fetchval(
            "INSERT INTO parts (message_id, session_id, idx, type, data, token_count, "
            "tool_call_id, tool_status, tool_output, tool_error, result_token_count, "
            "completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "RETURNING id",
            msg.id,
            session_id,
            idx,
            part.type,
            part_to_json(call),
            new.token_count,
            tool.tool_call_id if tool is not None else None,
            str(tool.status) if tool is not None else None,
            tool.output if tool is not None else None,
            tool.error_message if tool is not None else None,
            new.result_token_count,
            msg.created_at if tool is not None and tool.has_result else None,
        )
        await _sql.index_text(conn, int(part_id) * 2, session_id, searchable_text(part))
        if tool is not None and tool.has_result:
            result = tool.output if tool.output is not None else tool.error_message
            await _sql.index_text(conn, int(part_id) * 2 + 1, session_id, result or "")


async def fill(conn: Any, session_id: str, results: tuple[ToolResult, ...]) -> AppendOutcome:
    """Fill pending tool calls' result slots once each, and index the results."""
    now = time.time()
    message_ids: list[str] = []
    version_before = await _sql.lock_version(conn, session_id)
    for result in results:
        row = await conn.fetchrow(
            "SELECT id, message_id, tool_status, "
            "tool_output IS NOT NULL OR tool_error IS NOT NULL FROM parts "
            "WHERE session_id = $1 AND tool_call_id = $2 ORDER BY id DESC LIMIT 1",
            session_id,
            result.tool_call_id,
        )
        if row is None:
            raise ToolResultError(
                f"no tool call with id {result.tool_call_id!r} in session {session_id}"
            )
        if row[2] in ("completed", "error") or row[3]:
            raise ToolResultError(f"tool call {result.tool_call_id!r} already has a result")
        status = "error" if result.error is not None else "completed"
        await conn.execute(
            "UPDATE parts SET tool_status = $1, tool_output = $2, tool_error = $3, "
            "result_token_count = $4, completed_at = $5 WHERE id = $6",
            status,
            result.output,
            result.error,
            result.token_count,
            now,
            row[0],
        )
        body = result.output if result.output is not None else result.error
        await _sql.index_text(conn, int(row[0]) * 2 + 1, session_id, body or "")
        await conn.execute(
            "UPDATE messages SET token_count = token_count + $1 WHERE id = $2",
            result.token_count,
            row[1],
        )
        if row[1] not in message_ids:
            message_ids.append(row[1])
    await _sql.bump(conn, session_id)
    return AppendOutcome((), version_before, version_before + 1, tuple(message_ids))
