"""Verify: read each session's rows and re-derive the invariants over them.

The checks themselves live in :mod:`mnesis.store.sql.invariants` and know
nothing of SQL; this module only gathers the rows they need.
"""

from __future__ import annotations

from mnesis.store.sql.invariants import SessionRows, check_session
from mnesis.store.sql.log import get_session
from mnesis.store.sql.statements import Steps, all_rows, value


def verify(session_id: str | None) -> Steps[list[str]]:
    """Problems found in one session (or all) and in parts no message owns."""
    if session_id is not None:
        yield from get_session(session_id)
        sessions = [session_id]
    else:
        sessions = [str(r[0]) for r in (yield all_rows("SELECT id FROM sessions ORDER BY id"))]
    problems: list[str] = []
    for sid in sessions:
        problems += check_session((yield from session_rows(sid)))
    if session_id is None:
        orphans = yield all_rows(
            "SELECT p.id FROM parts p LEFT JOIN messages m ON m.id = p.message_id "
            "WHERE m.id IS NULL ORDER BY p.id LIMIT 10"
        )
    else:
        orphans = yield all_rows(
            "SELECT p.id FROM parts p LEFT JOIN messages m ON m.id = p.message_id "
            "WHERE m.id IS NULL AND p.session_id = ? ORDER BY p.id LIMIT 10",
            session_id,
        )
    return problems + [f"part {r[0]} belongs to no message" for r in orphans]


def session_rows(sid: str) -> Steps[SessionRows]:
    """Everything :func:`check_session` needs about one session."""
    totals = yield all_rows(
        "SELECT m.id, m.token_count, COALESCE(SUM(p.token_count + p.result_token_count), 0) "
        "FROM messages m LEFT JOIN parts p ON p.message_id = m.id "
        "WHERE m.session_id = ? GROUP BY m.id, m.seq, m.token_count ORDER BY m.seq",
        sid,
    )
    source_rows = yield all_rows(
        "SELECT ss.summary_id, ss.source_kind, ss.source_id FROM summary_sources ss "
        "JOIN summaries s ON s.id = ss.summary_id WHERE s.session_id = ? "
        "ORDER BY ss.summary_id, ss.ord",
        sid,
    )
    sources: dict[str, list[tuple[str, str]]] = {}
    for summary_id, kind, source in source_rows:
        sources.setdefault(summary_id, []).append((kind, source))
    snapshots = yield value("SELECT COUNT(*) FROM turns WHERE session_id = ?", sid)
    turn_count = yield value("SELECT turn_count FROM sessions WHERE id = ?", sid)
    messages = yield all_rows(
        "SELECT id, seq, status FROM messages WHERE session_id = ? ORDER BY seq", sid
    )
    context = yield all_rows(
        "SELECT kind, ref_id FROM context_items WHERE session_id = ? ORDER BY position", sid
    )
    summaries = yield all_rows(
        "SELECT id, kind, first_seq, last_seq, message_count FROM summaries WHERE session_id = ?",
        sid,
    )
    pins = yield all_rows("SELECT message_id FROM pins WHERE session_id = ?", sid)
    return SessionRows(
        session_id=sid,
        messages=[(r[0], int(r[1]), r[2]) for r in messages],
        context=[(r[0], r[1]) for r in context],
        summaries={r[0]: (r[1], int(r[2]), int(r[3]), int(r[4])) for r in summaries},
        sources=sources,
        pins={r[0] for r in pins},
        turn_count=int(turn_count),
        snapshots=int(snapshots),
        token_mismatches=[
            f"message {mid} token count {stored} != parts {actual}"
            for mid, stored, actual in totals
            if stored != actual
        ],
    )
