"""Erasing: the writes that remove rows, for data that must go.

Everything else in the store appends; a user who must erase (a privacy
request) needs the opposite. Two shapes keep every invariant
:mod:`~mnesis.store.sql.verify` checks:

- a whole session: its messages, parts, summaries and their DAG, pins, the
  context view, turn snapshots, reply drafts, vectors, full-text entries and
  the session row. Sessions that named it as their parent keep their own rows
  and lose only the link; file references are content-addressed and shared
  between sessions, so they stay.
- the session's latest message, while it is verbatim at the end of the
  context: sequence numbers stay 1..n and no summary ever covered it. Its
  turn's snapshot and the session's usage totals stay (the tokens were spent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mnesis.errors import InvalidInputError
from mnesis.store.records import AppendOutcome
from mnesis.store.sql.log import count_rewrite, lock_session
from mnesis.store.sql.rows import PART_COLUMNS, part_from_row, part_index_texts
from mnesis.store.sql.statements import Dialect, Steps, all_rows, execute, one, value
from mnesis.store.sql.summary_dag import rewritten

# Children before parents, so no foreign key is ever left dangling mid-way.
_SESSION_DELETES = (
    "DELETE FROM summary_sources WHERE summary_id IN "
    "(SELECT id FROM summaries WHERE session_id = ?)",
    "DELETE FROM pins WHERE session_id = ?",
    "DELETE FROM context_items WHERE session_id = ?",
    "DELETE FROM turns WHERE session_id = ?",
    "DELETE FROM reply_drafts WHERE session_id = ?",
    "DELETE FROM embeddings WHERE session_id = ?",
    "DELETE FROM parts WHERE session_id = ?",
    "DELETE FROM summaries WHERE session_id = ?",
    "DELETE FROM messages WHERE session_id = ?",
    "UPDATE sessions SET parent_id = NULL WHERE parent_id = ?",
    "DELETE FROM sessions WHERE id = ?",
)


def erase_session(d: Dialect, session_id: str) -> Steps[None]:
    """Delete the session and every row that holds its content.

    Raises:
        SessionNotFoundError: No session with that id.
    """
    yield from lock_session(session_id)
    rows = yield all_rows(
        f"SELECT p.id, {PART_COLUMNS} FROM parts p WHERE p.session_id = ? ORDER BY p.id",  # noqa: S608
        session_id,
    )
    yield from d.unindex(session_id, _indexed_bodies(rows))
    for sql in _SESSION_DELETES:
        yield execute(sql, session_id)


def erase_latest_message(d: Dialect, session_id: str, message_id: str) -> Steps[AppendOutcome]:
    """Delete the session's latest message, verbatim at the end of the context.

    Raises:
        SessionNotFoundError: No session with that id.
        InvalidInputError: The message is not the session's latest, is no
            longer verbatim at the end of the context, or is pinned.
    """
    before, rewrites = yield from lock_session(session_id)
    latest = yield one(
        "SELECT id FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT 1", session_id
    )
    if latest is None or latest[0] != message_id:
        raise InvalidInputError(
            f"message {message_id!r} is not the latest of session {session_id}; "
            "only the latest message can be erased alone (erase the session instead)"
        )
    last_item = yield one(
        "SELECT position, kind, ref_id FROM context_items WHERE session_id = ? "
        "ORDER BY position DESC LIMIT 1",
        session_id,
    )
    if last_item is None or (last_item[1], last_item[2]) != ("message", message_id):
        raise InvalidInputError(
            f"message {message_id!r} is not verbatim at the end of the context "
            "(summarised, or never complete); erase the session instead"
        )
    pinned = yield value(
        "SELECT 1 FROM pins WHERE session_id = ? AND message_id = ?", session_id, message_id
    )
    if pinned is not None:
        raise InvalidInputError(f"message {message_id!r} is pinned; it cannot be erased alone")
    rows = yield all_rows(
        f"SELECT p.id, {PART_COLUMNS} FROM parts p WHERE p.message_id = ? ORDER BY p.id",  # noqa: S608
        message_id,
    )
    yield from d.unindex(session_id, _indexed_bodies(rows))
    yield execute("DELETE FROM embeddings WHERE message_id = ?", message_id)
    yield execute(
        "DELETE FROM context_items WHERE session_id = ? AND position = ?",
        session_id,
        int(last_item[0]),
    )
    yield execute("DELETE FROM parts WHERE message_id = ?", message_id)
    yield execute("DELETE FROM messages WHERE id = ?", message_id)
    yield from count_rewrite(session_id, time.time())
    return rewritten(before, rewrites)


def _indexed_bodies(rows: Sequence[Sequence[Any]]) -> list[tuple[int, str]]:
    """The ``(key, text)`` full-text entries of parts rows (``id`` then PART_COLUMNS),
    as they were indexed when stored."""
    return [
        (int(row[0]) * 2 + offset, text)
        for row in rows
        for offset, text in part_index_texts(part_from_row(row, 1))
    ]
