"""Rows to values, shared by every SQL backend.

Both backends select the same columns in the same order (the constants
below), so decoding a row, grouping joined message/part rows and rebuilding
the context view happen once, here; a backend only runs its own SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from mnesis.errors import StaleContextError
from mnesis.models.info import SessionInfo
from mnesis.models.message import (
    Message,
    MessagePart,
    MessageWithParts,
    TokenUsage,
    ToolPart,
    part_to_json,
)
from mnesis.store.records import (
    PRUNED_MARKER,
    PRUNED_MARKER_TOKENS,
    ContextEntry,
    NewMessage,
    NewPart,
    NewSummary,
    SessionRecord,
    SummaryRecord,
    merge_tool_result,
    searchable_text,
)

SESSION_COLUMNS = (
    "id, model, agent, parent_id, system_prompt, config_json, created_at, updated_at, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, "
    "cost, turn_count, context_version"
)
MESSAGE_COLUMNS = (
    "m.id, m.session_id, m.seq, m.role, m.created_at, m.model, m.status, m.finish_reason, "
    "m.error, m.input_tokens, m.output_tokens, m.cache_read_tokens, m.cache_write_tokens, "
    "m.total_tokens, m.cost, m.token_count"
)
SUMMARY_COLUMNS = (
    "s.id, s.session_id, s.kind, s.depth, s.level_used, s.text, s.token_count, s.first_seq, "
    "s.last_seq, s.message_count, s.created_at, s.model"
)
PART_COLUMNS = (
    "p.data, p.tool_output, p.tool_error, p.tool_status, p.token_count, p.result_token_count, "
    "p.pruned_at"
)
INSERT_MESSAGE_COLUMNS = (
    "id, session_id, seq, role, created_at, model, status, finish_reason, error, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, cost, token_count"
)

_PART_ADAPTER: TypeAdapter[MessagePart] = TypeAdapter(MessagePart)


def usage_from_row(row: Sequence[Any], start: int) -> TokenUsage:
    return TokenUsage(
        input=row[start],
        output=row[start + 1],
        cache_read=row[start + 2],
        cache_write=row[start + 3],
        total=row[start + 4],
    )


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    """A SESSION_COLUMNS row."""
    return SessionRecord(
        id=row[0],
        model=row[1],
        agent=row[2],
        parent_id=row[3],
        system_prompt=row[4],
        config_json=row[5],
        created_at=row[6],
        updated_at=row[7],
        tokens=usage_from_row(row, 8),
        cost=row[13],
        turn_count=row[14],
        context_version=row[15],
    )


def session_info_from_row(row: Sequence[Any]) -> SessionInfo:
    """A SESSION_COLUMNS row followed by its message count and summary count."""
    record = session_from_row(row)
    return SessionInfo(
        id=record.id,
        model=record.model,
        agent=record.agent,
        parent_id=record.parent_id,
        created_at=datetime.fromtimestamp(record.created_at, tz=UTC),
        updated_at=datetime.fromtimestamp(record.updated_at, tz=UTC),
        turns=record.turn_count,
        messages=row[16],
        summaries=row[17],
        tokens=record.tokens,
        cost=record.cost,
    )


def message_from_row(row: Sequence[Any]) -> Message:
    """A MESSAGE_COLUMNS row."""
    return Message(
        id=row[0],
        session_id=row[1],
        seq=row[2],
        role=row[3],
        created_at=round(row[4] * 1000),
        model=row[5],
        status=row[6],
        finish_reason=row[7],
        error=row[8],
        tokens=usage_from_row(row, 9),
        cost=row[14],
        token_count=row[15],
    )


def summary_from_row(row: Sequence[Any]) -> SummaryRecord:
    """A SUMMARY_COLUMNS row."""
    return SummaryRecord(*row)


def part_from_row(row: Sequence[Any], start: int) -> MessagePart:
    """PART_COLUMNS starting at ``start``: the stored part with its result slot applied."""
    part = _PART_ADAPTER.validate_json(row[start])
    return merge_tool_result(
        part, row[start + 1], row[start + 2], row[start + 3], pruned_at=row[start + 6]
    )


INSERT_PART_COLUMNS = (
    "message_id, session_id, idx, type, data, token_count, tool_call_id, tool_status, "
    "tool_output, tool_error, result_token_count, completed_at"
)


def part_params(msg: NewMessage, idx: int, new: NewPart) -> tuple[Any, ...]:
    """Values for INSERT_PART_COLUMNS after ``message_id, session_id``: a tool call
    is stored without its result, which goes to the result slot's columns."""
    part = new.part
    tool = part if isinstance(part, ToolPart) else None
    call = part if tool is None else tool.model_copy(update={"output": None, "error_message": None})
    return (
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


def part_index_texts(part: MessagePart) -> list[tuple[int, str]]:
    """``(offset, text)`` to index for a part: its own text at 0 and, for a tool
    call with a result, the result at 1 (keys ``part_id * 2 + offset``)."""
    texts = [(0, searchable_text(part))]
    if isinstance(part, ToolPart) and part.has_result:
        result = part.output if part.output is not None else part.error_message
        texts.append((1, result or ""))
    return texts


def message_params(session_id: str, seq: int, msg: NewMessage) -> tuple[Any, ...]:
    """Values for INSERT_MESSAGE_COLUMNS."""
    t = msg.tokens
    return (
        msg.id,
        session_id,
        seq,
        msg.role,
        msg.created_at,
        msg.model,
        str(msg.status),
        msg.finish_reason,
        msg.error,
        t.input,
        t.output,
        t.cache_read,
        t.cache_write,
        t.effective_total(),
        msg.cost,
        msg.token_count,
    )


def group_messages(rows: Iterable[Sequence[Any]]) -> list[MessageWithParts]:
    """MESSAGE_COLUMNS + PART_COLUMNS rows (parts LEFT JOINed, in order) as messages."""
    out: list[MessageWithParts] = []
    current: Message | None = None
    parts: list[MessagePart] = []
    for row in rows:
        if current is None or current.id != row[0]:
            if current is not None:
                out.append(MessageWithParts(message=current, parts=parts))
            current = message_from_row(row)
            parts = []
        if row[16] is not None:
            parts.append(part_from_row(row, 16))
    if current is not None:
        out.append(MessageWithParts(message=current, parts=parts))
    return out


def context_entries_from_rows(
    rows: Iterable[Sequence[Any]],
    summaries: dict[str, SummaryRecord],
    pinned: set[str],
) -> list[ContextEntry]:
    """Rows of (position, kind, ref_id, role, seq, PART_COLUMNS...) in position order as
    the context view; pruned tool outputs carry their tombstone."""
    groups: list[tuple[tuple[Any, ...], list[MessagePart], list[int]]] = []
    for r in rows:
        if not groups or groups[-1][0][0] != r[0]:
            groups.append(((r[0], r[1], r[2], r[3], r[4]), [], []))
        if r[5] is None:
            continue
        _, parts, tokens = groups[-1]
        part = part_from_row(r, 5)
        if r[11] is not None and isinstance(part, ToolPart) and part.has_result:
            part = part.model_copy(update={"output": PRUNED_MARKER, "error_message": None})
            tokens.append(int(r[9]) + PRUNED_MARKER_TOKENS)
        else:
            tokens.append(int(r[9]) + int(r[10]))
        parts.append(part)
    entries: list[ContextEntry] = []
    for (position, kind, ref_id, role, seq), parts, tokens in groups:
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
                    position=int(position),
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
                    position=int(position),
                )
            )
    return entries


def span_start(items: Sequence[Sequence[Any]], summary: NewSummary, session_id: str) -> int:
    """Where the summary's sources stand as one contiguous run in the context view
    (rows of position, kind, ref_id); ``StaleContextError`` if they no longer do."""
    kind = "message" if summary.kind == "leaf" else "summary"
    refs = [(row[1], row[2]) for row in items]
    wanted = [(kind, ref) for ref in summary.sources]
    for i in range(len(refs) - len(wanted) + 1):
        if refs[i : i + len(wanted)] == wanted:
            return i
    raise StaleContextError(
        f"the items summary {summary.id} would replace are no longer a contiguous run of the "
        f"context of session {session_id}"
    )
