"""An append in one round trip: the whole of ``log.append`` as one statement.

:func:`mnesis.store.sql.log.append` sends a dozen statements per turn (lock
the session, read the last numbers, then per message its row, its parts and
their index entries, then the context view, the counters and the turn), and a
transaction around them: on PostgreSQL a round trip each, and a turn's time is
mostly waiting for them. :data:`STATEMENT` writes the same rows in one
statement of data-modifying CTEs, atomic without ``BEGIN`` / ``COMMIT``; every
value is prepared here the way ``log.append`` prepares it (:func:`arguments`).

The shared algorithm locks the session's row, then reads the last sequence
number, context position and turn index, in a later statement that sees what
other writers committed before the lock. One statement reads with the snapshot
it began with, which may predate the lock: a writer that committed while this
statement waited for the lock (or just before it took it) is not seen. Such a
writer updated the session's row too (every write that adds messages, context
entries or turns does, in the same transaction: the counters, the context
version), and the lock returns the row's newest version while the statement's
snapshot shows an older one. So the statement compares the two (``ctid``, the
version's place, changes with every update) and writes only when they are the
same version: then its snapshot holds every committed write of the session, and
the numbers are the next free ones. Otherwise it writes nothing and
:func:`outcome` returns None; the store then runs the shared algorithm (a few
round trips, only when writers of one session collide). Were a writer ever to
add rows without updating the session, the unique keys on (session, seq),
(session, position) and (session, turn index) would refuse the duplicate, not
store it. ``tests/store/test_postgres_append.py`` checks that both write the
same rows and return the same outcome, and the fallback under contention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mnesis.errors import SessionNotFoundError
from mnesis.models.message import TokenUsage
from mnesis.models.results import TurnSnapshot
from mnesis.store.postgres.text import tsvector_chunks
from mnesis.store.records import AppendOutcome, NewMessage, SessionCounters
from mnesis.store.sql.rows import (
    message_params,
    part_index_texts,
    part_params,
    usage_from_row,
)

# The statement's parameters, in the order :func:`arguments` gives them: m_* one
# element per message, p_* one per part (p_message: its message, 1-based), i_* one
# per index chunk (i_part: its part, 1-based; i_result: 0 for the part's own text,
# 1 for its tool result); turn_json_tail: the snapshot's JSON after
# '{"turn_index":<n>', NULL when the append completes no turn.
_PARAMETERS = [
    ("session_id", "text"),
    ("now", "float8"),
    ("m_id", "text[]"),
    ("m_role", "text[]"),
    ("m_created_at", "float8[]"),
    ("m_model", "text[]"),
    ("m_status", "text[]"),
    ("m_finish_reason", "text[]"),
    ("m_error", "text[]"),
    ("m_input_tokens", "int8[]"),
    ("m_output_tokens", "int8[]"),
    ("m_cache_read_tokens", "int8[]"),
    ("m_cache_write_tokens", "int8[]"),
    ("m_total_tokens", "int8[]"),
    ("m_cost", "float8[]"),
    ("m_token_count", "int8[]"),
    ("m_joins", "bool[]"),
    ("p_message", "int4[]"),
    ("p_idx", "int4[]"),
    ("p_type", "text[]"),
    ("p_data", "text[]"),
    ("p_token_count", "int8[]"),
    ("p_tool_call_id", "text[]"),
    ("p_tool_status", "text[]"),
    ("p_tool_output", "text[]"),
    ("p_tool_error", "text[]"),
    ("p_result_token_count", "int8[]"),
    ("p_completed_at", "float8[]"),
    ("i_part", "int4[]"),
    ("i_result", "int4[]"),
    ("i_chunk", "int4[]"),
    ("i_tsv", "text[]"),
    ("u_input_tokens", "int8"),
    ("u_output_tokens", "int8"),
    ("u_cache_read_tokens", "int8"),
    ("u_cache_write_tokens", "int8"),
    ("u_total_tokens", "int8"),
    ("u_cost", "float8"),
    ("turn_json_tail", "text"),
]
# One row: whether the session exists; then, NULL when another writer's commit
# was missed (see above), the context version and rewrite count before the
# append, the last sequence number and context position before it, the turn
# index taken (NULL without a turn) and the session's counters after it.
# Part ids are drawn first and handed out in the order of the parts, as
# inserting the parts one by one would give them.
_SQL = """
WITH locked AS (
    SELECT ctid, context_version, context_rewrites FROM sessions
    WHERE id = $session_id FOR NO KEY UPDATE
), last AS (
    SELECT l.context_version, l.context_rewrites,
           (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = $session_id) AS seq,
           (SELECT COALESCE(MAX(position), 0) FROM context_items
            WHERE session_id = $session_id) AS position,
           CASE WHEN $turn_json_tail IS NOT NULL THEN
               (SELECT COALESCE(MAX(turn_index), 0) + 1 FROM turns
                WHERE session_id = $session_id)
           END AS turn_index
    FROM locked l JOIN sessions s ON s.id = $session_id AND s.ctid = l.ctid
), ids AS (
    SELECT array_agg(g.id ORDER BY g.id) AS a
    FROM (SELECT nextval('parts_id_seq') AS id
          FROM last, generate_series(1, cardinality($p_idx))) g
), m AS (
    INSERT INTO messages (id, session_id, seq, role, created_at, model, status, finish_reason,
                          error, input_tokens, output_tokens, cache_read_tokens,
                          cache_write_tokens, total_tokens, cost, token_count)
    SELECT m.id, $session_id, last.seq + m.n, m.role, m.created_at, m.model, m.status,
           m.finish_reason, m.error, m.input_tokens, m.output_tokens, m.cache_read_tokens,
           m.cache_write_tokens, m.total_tokens, m.cost, m.token_count
    FROM last, unnest($m_id, $m_role, $m_created_at, $m_model, $m_status, $m_finish_reason,
                      $m_error, $m_input_tokens, $m_output_tokens, $m_cache_read_tokens,
                      $m_cache_write_tokens, $m_total_tokens, $m_cost, $m_token_count)
         WITH ORDINALITY AS m(id, role, created_at, model, status, finish_reason, error,
                              input_tokens, output_tokens, cache_read_tokens,
                              cache_write_tokens, total_tokens, cost, token_count, n)
), p AS (
    INSERT INTO parts (id, message_id, session_id, idx, type, data, token_count, tool_call_id,
                       tool_status, tool_output, tool_error, result_token_count, completed_at)
    SELECT ids.a[p.n], ($m_id)[p.message], $session_id, p.idx, p.type, p.data, p.token_count,
           p.tool_call_id, p.tool_status, p.tool_output, p.tool_error, p.result_token_count,
           p.completed_at
    FROM last, ids, unnest($p_message, $p_idx, $p_type, $p_data, $p_token_count,
                           $p_tool_call_id, $p_tool_status, $p_tool_output, $p_tool_error,
                           $p_result_token_count, $p_completed_at)
         WITH ORDINALITY AS p(message, idx, type, data, token_count, tool_call_id,
                              tool_status, tool_output, tool_error, result_token_count,
                              completed_at, n)
), i AS (
    INSERT INTO search_index (key, chunk, session_id, tsv)
    SELECT ids.a[i.part] * 2 + i.result, i.chunk, $session_id, i.tsv::tsvector
    FROM last, ids, unnest($i_part, $i_result, $i_chunk, $i_tsv) AS i(part, result, chunk, tsv)
), c AS (
    INSERT INTO context_items (session_id, position, kind, ref_id)
    SELECT $session_id, last.position + row_number() OVER (ORDER BY c.n), 'message', c.id
    FROM last, unnest($m_id, $m_joins) WITH ORDINALITY AS c(id, joins, n)
    WHERE c.joins
), t AS (
    INSERT INTO turns (session_id, turn_index, snapshot_json, created_at)
    SELECT $session_id, last.turn_index, '{"turn_index":' || last.turn_index || $turn_json_tail,
           $now
    FROM last WHERE $turn_json_tail IS NOT NULL
), u AS (
    UPDATE sessions s SET updated_at = $now,
        input_tokens = s.input_tokens + $u_input_tokens,
        output_tokens = s.output_tokens + $u_output_tokens,
        cache_read_tokens = s.cache_read_tokens + $u_cache_read_tokens,
        cache_write_tokens = s.cache_write_tokens + $u_cache_write_tokens,
        total_tokens = s.total_tokens + $u_total_tokens,
        cost = s.cost + $u_cost,
        turn_count = s.turn_count + (CASE WHEN $turn_json_tail IS NULL THEN 0 ELSE 1 END),
        context_version = s.context_version + (CASE WHEN true = ANY($m_joins) THEN 1 ELSE 0 END)
    FROM last WHERE s.id = $session_id
    RETURNING s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens,
              s.total_tokens, s.cost, s.turn_count
)
SELECT EXISTS (SELECT FROM locked), last.context_version, last.context_rewrites, last.seq,
       last.position, last.turn_index, u.*
FROM (SELECT) AS one LEFT JOIN last ON true LEFT JOIN u ON true
"""
_NUMBERED = {name: (n, kind) for n, (name, kind) in enumerate(_PARAMETERS, 1)}


def _placeholder(name: re.Match[str]) -> str:
    """``$name`` as ``$n::type``: only placeholders go in, every value is a parameter."""
    n, kind = _NUMBERED[name[1]]
    return f"${n}::{kind}"


STATEMENT = re.sub(r"\$(\w+)", _placeholder, _SQL)

_TURN_HEAD = '{"turn_index":0'


def turn_json_tail(snapshot: TurnSnapshot) -> str | None:
    """The snapshot's JSON after ``{"turn_index":<n>``: the statement puts the turn
    index it takes in front. None if the JSON does not start with the index."""
    text = snapshot.model_copy(update={"turn_index": 0}).model_dump_json()
    if not text.startswith(_TURN_HEAD):
        return None
    return text[len(_TURN_HEAD) :]


def arguments(
    session_id: str,
    now: float,
    messages: Sequence[NewMessage],
    usage: TokenUsage | None,
    cost: float,
    turn_tail: str | None,
) -> list[Any]:
    """The statement's parameters: the rows as ``log.append`` would insert them."""
    rows = [message_params(session_id, 0, msg) for msg in messages]
    # message_params: id, session_id, seq, role, created_at, model, status,
    # finish_reason, error, input .. total tokens, cost, token_count.
    message_columns = [[row[c] for row in rows] for c in (0, *range(3, 16))]
    joins = [msg.status == "complete" for msg in messages]
    part_columns: list[list[Any]] = [[] for _ in range(11)]
    index_columns: list[list[Any]] = [[], [], [], []]
    for m, msg in enumerate(messages, 1):
        for idx, new in enumerate(msg.parts):
            for column, item in zip(part_columns, (m, *part_params(msg, idx, new)), strict=True):
                column.append(item)
            ordinal = len(part_columns[0])
            for offset, text in part_index_texts(new.part):
                for chunk, vector in enumerate(tsvector_chunks(text)):
                    index_columns[0].append(ordinal)
                    index_columns[1].append(offset)
                    index_columns[2].append(chunk)
                    index_columns[3].append(vector)
    u = usage or TokenUsage()
    return [
        session_id,
        now,
        *message_columns,
        joins,
        *part_columns,
        *index_columns,
        u.input,
        u.output,
        u.cache_read,
        u.cache_write,
        u.effective_total() if usage is not None else 0,
        cost,
        turn_tail,
    ]


def outcome(session_id: str, messages: Sequence[NewMessage], row: Any) -> AppendOutcome | None:
    """The :class:`AppendOutcome` of the statement's row; None when it wrote
    nothing because another writer's commit was missed (run the shared algorithm)."""
    if not row[0]:
        raise SessionNotFoundError(session_id)
    if row[1] is None:
        return None
    before, rewrites, last_seq, last_position, turn_index = (
        int(row[1]),
        int(row[2]),
        int(row[3]),
        int(row[4]),
        row[5],
    )
    joined = sum(msg.status == "complete" for msg in messages)
    return AppendOutcome(
        tuple(range(last_seq + 1, last_seq + 1 + len(messages))),
        before,
        before + (1 if joined else 0),
        counters=SessionCounters(usage_from_row(row, 6), row[11], row[12]),
        turn_index=None if turn_index is None else int(turn_index),
        rewrites=rewrites,
        positions=tuple(range(last_position + 1, last_position + 1 + joined)),
    )
