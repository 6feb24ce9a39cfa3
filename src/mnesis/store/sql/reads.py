"""Reads of the log: messages, the context view, snapshots, sessions, search.

Messages come back as joined message/part rows that
:func:`mnesis.store.sql.rows.group_messages` folds into values; nothing here
writes.
"""

from __future__ import annotations

from typing import Any

from mnesis.errors import SessionNotFoundError
from mnesis.models.info import SessionInfo
from mnesis.models.message import MessageWithParts
from mnesis.models.results import TurnSnapshot
from mnesis.store.records import ContextChanges, ContextEntry, ContextMark, SummaryRecord
from mnesis.store.sql.rows import (
    MESSAGE_COLUMNS,
    PART_COLUMNS,
    SESSION_COLUMNS,
    SUMMARY_COLUMNS,
    context_entries_from_rows,
    group_messages,
    session_info_from_row,
    summary_from_row,
)
from mnesis.store.sql.statements import Dialect, Steps, all_rows, one, value

_SESSION_INFO = (
    f"SELECT {SESSION_COLUMNS}, "  # noqa: S608
    "(SELECT COUNT(*) FROM messages m WHERE m.session_id = sessions.id), "
    "(SELECT COUNT(*) FROM summaries s WHERE s.session_id = sessions.id) FROM sessions"
)


def get_messages(session_id: str) -> Steps[list[MessageWithParts]]:
    """The session's whole history, in order."""
    found = yield value("SELECT 1 FROM sessions WHERE id = ?", session_id)
    if found is None:
        raise SessionNotFoundError(session_id)
    rows = yield all_rows(
        f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
        "LEFT JOIN parts p ON p.message_id = m.id "
        "WHERE m.session_id = ? ORDER BY m.seq, p.idx",
        session_id,
    )
    return group_messages(rows)


def get_message(message_id: str) -> Steps[MessageWithParts]:
    """One message; ``KeyError`` if unknown."""
    rows = yield all_rows(
        f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
        "LEFT JOIN parts p ON p.message_id = m.id WHERE m.id = ? ORDER BY p.idx",
        message_id,
    )
    if not rows:
        raise KeyError(f"no message with id {message_id!r}")
    return group_messages(rows)[0]


def get_messages_by_id(
    session_id: str, message_ids: tuple[str, ...]
) -> Steps[list[MessageWithParts]]:
    """The session's messages with these ids, in sequence order."""
    if not message_ids:
        return []
    # Looked up by primary key alone; the session is checked on the rows, which keeps
    # SQLite's planner off the session's whole range.
    rows = yield all_rows(
        f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
        "LEFT JOIN parts p ON p.message_id = m.id "
        "WHERE m.id = ANY(?) ORDER BY m.seq, p.idx",
        list(message_ids),
    )
    return group_messages(row for row in rows if row[1] == session_id)


def scan_messages(session_id: str, after_seq: int, limit: int) -> Steps[list[MessageWithParts]]:
    """The next ``limit`` messages after ``after_seq``, in order."""
    rows = yield all_rows(
        f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM "  # noqa: S608
        "(SELECT * FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?) m "
        "LEFT JOIN parts p ON p.message_id = m.id ORDER BY m.seq, p.idx",
        session_id,
        after_seq,
        limit,
    )
    return group_messages(rows)


def context_entries(session_id: str) -> Steps[tuple[int, list[ContextEntry]]]:
    """The active context view and its version."""
    view = yield from context_changes(session_id, None)
    return view.version, list(view.entries)


_VIEW_ROWS = (
    f"SELECT ci.position, ci.kind, ci.ref_id, m.role, m.seq, {PART_COLUMNS} "  # noqa: S608
    "FROM context_items ci "
    "LEFT JOIN messages m ON m.id = ci.ref_id AND ci.kind = 'message' "
    "LEFT JOIN parts p ON p.message_id = m.id WHERE ci.session_id = ? "
)
_IN_ORDER = " ORDER BY ci.position, p.idx"


def context_changes(session_id: str, since: ContextMark | None) -> Steps[ContextChanges]:
    """What a copy of the view at ``since`` lacks (everything without a mark).

    The driver runs a read in one snapshot, so the counters and the entries
    read agree.
    """
    counters = yield one(
        "SELECT context_version, context_rewrites FROM sessions WHERE id = ?", session_id
    )
    if counters is None:
        raise SessionNotFoundError(session_id)
    version, rewrites = int(counters[0]), int(counters[1])
    if since is not None and since.version == version:
        return ContextChanges(version, rewrites, False, ())
    if since is None or since.rewrites != rewrites:
        entries = yield from _whole_view(session_id)
        return ContextChanges(version, rewrites, True, tuple(entries))
    # No rewrite since the mark: the view is the copy's entries, some of them with
    # tool results filled since, then entries appended after its last position.
    rows = yield all_rows(
        _VIEW_ROWS + "AND ci.position > ?" + _IN_ORDER, session_id, since.last_position
    )
    tail = yield from _entries_of(session_id, rows)
    filled: list[ContextEntry] = []
    if since.awaiting_results:
        rows = yield all_rows(
            _VIEW_ROWS + "AND ci.kind = 'message' AND ci.ref_id = ANY(?)" + _IN_ORDER,
            session_id,
            list(since.awaiting_results),
        )
        filled = yield from _entries_of(session_id, rows)
    return ContextChanges(version, rewrites, False, tuple(tail), tuple(filled))


def _whole_view(session_id: str) -> Steps[list[ContextEntry]]:
    pins = yield all_rows("SELECT message_id FROM pins WHERE session_id = ?", session_id)
    summary_rows = yield all_rows(
        f"SELECT {SUMMARY_COLUMNS} FROM context_items ci "  # noqa: S608
        "JOIN summaries s ON s.id = ci.ref_id "
        "WHERE ci.session_id = ? AND ci.kind = 'summary'",
        session_id,
    )
    rows = yield all_rows(_VIEW_ROWS + _IN_ORDER, session_id)
    summaries = {s.id: s for s in map(summary_from_row, summary_rows)}
    pinned = {str(r[0]) for r in pins}
    return context_entries_from_rows(rows, summaries, pinned)


def _entries_of(session_id: str, rows: list[Any]) -> Steps[list[ContextEntry]]:
    """View rows of a few entries as entries, with their summaries and pins."""
    if not rows:
        return []
    summary_ids = sorted({str(r[2]) for r in rows if r[1] == "summary"})
    message_ids = sorted({str(r[2]) for r in rows if r[1] == "message"})
    summaries: dict[str, SummaryRecord] = {}
    if summary_ids:
        summary_rows = yield all_rows(
            f"SELECT {SUMMARY_COLUMNS} FROM summaries s WHERE s.id = ANY(?)",  # noqa: S608
            summary_ids,
        )
        summaries = {s.id: s for s in map(summary_from_row, summary_rows)}
    pins = []
    if message_ids:
        pins = yield all_rows(
            "SELECT message_id FROM pins WHERE session_id = ? AND message_id = ANY(?)",
            session_id,
            message_ids,
        )
    return context_entries_from_rows(rows, summaries, {str(r[0]) for r in pins})


def snapshots(
    session_id: str, after_turn: int = 0, through_turn: int | None = None
) -> Steps[list[TurnSnapshot]]:
    """One snapshot per completed turn after ``after_turn`` (and up to
    ``through_turn``, when given), in order."""
    found = yield value("SELECT 1 FROM sessions WHERE id = ?", session_id)
    if found is None:
        raise SessionNotFoundError(session_id)
    if through_turn is None:
        rows = yield all_rows(
            "SELECT snapshot_json FROM turns WHERE session_id = ? AND turn_index > ? "
            "ORDER BY turn_index",
            session_id,
            after_turn,
        )
    else:
        rows = yield all_rows(
            "SELECT snapshot_json FROM turns WHERE session_id = ? AND turn_index > ? "
            "AND turn_index <= ? ORDER BY turn_index",
            session_id,
            after_turn,
            through_turn,
        )
    return [TurnSnapshot.model_validate_json(r[0]) for r in rows]


def list_sessions(session_id: str | None) -> Steps[list[SessionInfo]]:
    """Every session (or one), newest first, with message and summary counts."""
    if session_id is None:
        rows = yield all_rows(_SESSION_INFO + " ORDER BY created_at DESC")
    else:
        rows = yield all_rows(_SESSION_INFO + " WHERE id = ?", session_id)
        if not rows:
            raise SessionNotFoundError(session_id)
    return [session_info_from_row(row) for row in rows]


def search(
    d: Dialect, session_id: str, terms: tuple[str, ...], after: int, limit: int
) -> Steps[list[tuple[int, str]]]:
    """Full-text hits ``(key, message_id)`` after ``after``, in storage order."""
    rows = yield from d.search(session_id, terms, after, limit)
    return [(int(r[0]), str(r[1])) for r in rows]


def schema_version() -> Steps[int]:
    """The schema version recorded in the database."""
    version = yield value("SELECT MAX(version) FROM schema_migrations")
    return int(version)
