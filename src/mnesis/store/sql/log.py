"""The log itself: sessions, appending messages, filling tool results.

Every write first locks the session's row (``FOR NO KEY UPDATE`` on
PostgreSQL, which conflicts with itself but not with foreign-key checks of
rows that merely refer to the session; SQLite's ``BEGIN IMMEDIATE`` already
holds the file's write lock), so writers of one session queue up and never
hand out the same sequence number, context position or turn index: each is the
next free one in the tables, read inside the appending transaction, never a
counter a process cached, so any number of processes and hosts may append to
one session.
"""

from __future__ import annotations

import time

from mnesis.errors import SessionNotFoundError, ToolResultError
from mnesis.models.message import TokenUsage
from mnesis.models.results import TurnSnapshot
from mnesis.store.records import (
    AppendOutcome,
    NewMessage,
    SessionCounters,
    SessionRecord,
    ToolResult,
)
from mnesis.store.sql.rows import (
    INSERT_MESSAGE_COLUMNS,
    INSERT_PART_COLUMNS,
    SESSION_COLUMNS,
    message_params,
    part_index_texts,
    part_params,
    session_from_row,
    usage_from_row,
)
from mnesis.store.sql.statements import (
    Dialect,
    Steps,
    execute,
    many,
    new_id,
    one,
    value,
)


def lock_session(session_id: str) -> Steps[tuple[int, int]]:
    """Lock the session's row for this transaction; its context version and rewrite count."""
    row = yield one(
        "SELECT context_version, context_rewrites FROM sessions WHERE id = ? FOR NO KEY UPDATE",
        session_id,
    )
    if row is None:
        raise SessionNotFoundError(session_id)
    return int(row[0]), int(row[1])


def bump_version(session_id: str, now: float) -> Steps[None]:
    """An entry of the context view changed in place (a tool result): a new version."""
    yield execute(
        "UPDATE sessions SET context_version = context_version + 1, updated_at = ? WHERE id = ?",
        now,
        session_id,
    )


def count_rewrite(session_id: str, now: float) -> Steps[None]:
    """The context view was rewritten (more than appended to or filled): a new
    version and one more rewrite, so a copy of the view is re-read whole."""
    yield execute(
        "UPDATE sessions SET context_version = context_version + 1, "
        "context_rewrites = context_rewrites + 1, updated_at = ? WHERE id = ?",
        now,
        session_id,
    )


def create_session(r: SessionRecord) -> Steps[None]:
    """Insert a session whose parent, if any, exists."""
    if r.parent_id is not None:
        found = yield value("SELECT 1 FROM sessions WHERE id = ?", r.parent_id)
        if found is None:
            raise SessionNotFoundError(r.parent_id)
    yield execute(
        "INSERT INTO sessions (id, parent_id, agent, model, system_prompt, config_json, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        r.id,
        r.parent_id,
        r.agent,
        r.model,
        r.system_prompt,
        r.config_json,
        r.created_at,
        r.created_at,
    )


def get_session(session_id: str) -> Steps[SessionRecord]:
    """The session's row."""
    row = yield one(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", session_id)  # noqa: S608
    if row is None:
        raise SessionNotFoundError(session_id)
    return session_from_row(row)


_LAST_NUMBERS = (
    "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?), "
    "(SELECT COALESCE(MAX(position), 0) FROM context_items WHERE session_id = ?)"
)
_LAST_TURN = ", (SELECT COALESCE(MAX(turn_index), 0) FROM turns WHERE session_id = ?)"
# The last seq and context position (and turn index, for a turn) of a session,
# alone or, where the write lock is held from BEGIN, with the session's row.
_LAST = {turn: f"SELECT {_LAST_NUMBERS}{_LAST_TURN if turn else ''}" for turn in (False, True)}
_ROW_AND_LAST = {
    turn: "SELECT context_version, context_rewrites, "  # noqa: S608
    f"{_LAST_NUMBERS}{_LAST_TURN if turn else ''} FROM sessions WHERE id = ?"
    for turn in (False, True)
}


def append(
    d: Dialect,
    session_id: str,
    messages: tuple[NewMessage, ...],
    usage: TokenUsage | None,
    cost: float,
    snapshot: TurnSnapshot | None,
) -> Steps[AppendOutcome]:
    """Append messages (complete ones join the context view) and the turn's bookkeeping.

    The snapshot is stored under the next free turn index (its own
    ``turn_index`` is replaced); the outcome carries that index, the context
    positions given and the session's counters after the append.
    """
    now = time.time()
    turn = snapshot is not None
    ids = (session_id,) * (3 if turn else 2)
    if d.locked_from_begin:  # nothing can change between two reads: read once
        row = yield one(_ROW_AND_LAST[turn], *ids, session_id)
        if row is None:
            raise SessionNotFoundError(session_id)
        before, rewrites, last = int(row[0]), int(row[1]), row[2:]
    else:
        before, rewrites = yield from lock_session(session_id)
        last = yield one(_LAST[turn], *ids)
    seq, position = int(last[0]), int(last[1])
    seqs: list[int] = []
    joined: list[tuple[str, int, str]] = []
    bodies: list[tuple[int, str]] = []
    for msg in messages:
        seq += 1
        seqs.append(seq)
        bodies += yield from insert_message(d, session_id, seq, msg, index=False)
        if msg.status == "complete":
            position += 1
            joined.append((session_id, position, msg.id))
    if bodies:
        yield from d.index(session_id, bodies)
    if joined:
        yield many(
            "INSERT INTO context_items (session_id, position, kind, ref_id) "
            "VALUES (?, ?, 'message', ?)",
            joined,
        )
    u = usage or TokenUsage()
    counters = yield one(
        "UPDATE sessions SET updated_at = ?, input_tokens = input_tokens + ?, "
        "output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?, "
        "cache_write_tokens = cache_write_tokens + ?, total_tokens = total_tokens + ?, "
        "cost = cost + ?, turn_count = turn_count + ?, "
        "context_version = context_version + ? WHERE id = ? "
        "RETURNING input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "total_tokens, cost, turn_count",
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
    turn_index = None
    if snapshot is not None:
        turn_index = int(last[2]) + 1
        yield execute(
            "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) "
            "VALUES (?, ?, ?, ?)",
            session_id,
            turn_index,
            snapshot.model_copy(update={"turn_index": turn_index}).model_dump_json(),
            now,
        )
    return AppendOutcome(
        tuple(seqs),
        before,
        before + (1 if joined else 0),
        counters=SessionCounters(usage_from_row(counters, 0), counters[5], counters[6]),
        turn_index=turn_index,
        rewrites=rewrites,
        positions=tuple(p for _, p, _ in joined),
    )


def insert_message(
    d: Dialect, session_id: str, seq: int, msg: NewMessage, *, index: bool = True
) -> Steps[list[tuple[int, str]]]:
    """One message row, its parts, and their full-text index entries (or, with
    ``index=False``, those entries returned for the caller to add with others)."""
    bodies: list[tuple[int, str]] = []
    yield execute(
        f"INSERT INTO messages ({INSERT_MESSAGE_COLUMNS}) "  # noqa: S608
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        *message_params(session_id, seq, msg),
    )
    for idx, new in enumerate(msg.parts):
        part_id = yield new_id(
            f"INSERT INTO parts ({INSERT_PART_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            msg.id,
            session_id,
            *part_params(msg, idx, new),
        )
        bodies += [(int(part_id) * 2 + at, text) for at, text in part_index_texts(new.part)]
    if index and bodies:
        yield from d.index(session_id, bodies)
    return bodies


def check_results(results: tuple[ToolResult, ...]) -> None:
    """``ToolResultError`` for results no store may take (before any transaction)."""
    if not results:
        raise ToolResultError("no tool results given")
    for result in results:
        if result.output is None and result.error is None:
            raise ToolResultError(f"tool call {result.tool_call_id!r}: no output and no error")


def fill_tool_results(
    d: Dialect, session_id: str, results: tuple[ToolResult, ...]
) -> Steps[AppendOutcome]:
    """Fill pending tool calls' result slots once each, and index the results."""
    now = time.time()
    message_ids: list[str] = []
    before, rewrites = yield from lock_session(session_id)
    for result in results:
        row = yield one(
            "SELECT id, message_id, tool_status, "
            "tool_output IS NOT NULL OR tool_error IS NOT NULL FROM parts "
            "WHERE session_id = ? AND tool_call_id = ? ORDER BY id DESC LIMIT 1",
            session_id,
            result.tool_call_id,
        )
        if row is None:
            raise ToolResultError(
                f"no tool call with id {result.tool_call_id!r} in session {session_id}"
            )
        part_id, message_id, status, has_result = row
        if status in ("completed", "error") or has_result:
            raise ToolResultError(f"tool call {result.tool_call_id!r} already has a result")
        yield execute(
            "UPDATE parts SET tool_status = ?, tool_output = ?, tool_error = ?, "
            "result_token_count = ?, completed_at = ? WHERE id = ?",
            "error" if result.error is not None else "completed",
            result.output,
            result.error,
            result.token_count,
            now,
            part_id,
        )
        body = result.output if result.output is not None else result.error
        yield from d.index(session_id, [(int(part_id) * 2 + 1, body or "")])
        yield execute(
            "UPDATE messages SET token_count = token_count + ? WHERE id = ?",
            result.token_count,
            message_id,
        )
        if message_id not in message_ids:
            message_ids.append(message_id)
    # Not a rewrite: a copy of the view re-reads its entries that await results.
    yield from bump_version(session_id, now)
    return AppendOutcome((), before, before + 1, tuple(message_ids), rewrites=rewrites)
