"""Reply drafts: saved while a reply streams, removed once it is stored, settled if orphaned."""

from __future__ import annotations

from mnesis.store.drafts import ReplyDraft
from mnesis.store.owners import ProcessOwner
from mnesis.store.records import NewMessage
from mnesis.store.sql import log
from mnesis.store.sql.statements import Dialect, Steps, all_rows, execute, rowcount, value


def save_draft(
    session_id: str, message_id: str, text: str, owner: ProcessOwner, now: float
) -> Steps[None]:
    """Insert the draft, or replace its text and heartbeat."""
    yield execute(
        "INSERT INTO reply_drafts (message_id, session_id, text, host, pid, started, "
        "created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (message_id) DO UPDATE SET text = excluded.text, "
        "heartbeat_at = excluded.heartbeat_at",
        message_id,
        session_id,
        text,
        owner.host,
        owner.pid,
        owner.started,
        now,
        now,
    )


def discard_draft(message_id: str) -> Steps[None]:
    """Remove a draft (its reply, or its failure, is stored)."""
    yield execute("DELETE FROM reply_drafts WHERE message_id = ?", message_id)


def drafts_of(session_id: str) -> Steps[list[ReplyDraft]]:
    """The session's drafts, oldest first."""
    rows = yield all_rows(
        "SELECT message_id, session_id, text, host, pid, started, created_at, heartbeat_at "
        "FROM reply_drafts WHERE session_id = ? ORDER BY created_at, message_id",
        session_id,
    )
    return [
        ReplyDraft(r[0], r[1], r[2], ProcessOwner(r[3], int(r[4]), r[5]), r[6], r[7]) for r in rows
    ]


def settle_draft(d: Dialect, session_id: str, interrupted: NewMessage) -> Steps[bool]:
    """Replace an orphaned draft by ``interrupted`` (a failed message with its id).

    Returns False, storing nothing, when another loader settled it first or the
    reply itself was stored before its process died (then only the draft goes).
    """
    yield from log.lock_session(session_id)
    removed = yield rowcount(
        "DELETE FROM reply_drafts WHERE message_id = ? AND session_id = ?",
        interrupted.id,
        session_id,
    )
    if not removed:
        return False
    stored = yield value("SELECT 1 FROM messages WHERE id = ?", interrupted.id)
    if stored is not None:
        return False
    yield from log.append(d, session_id, (interrupted,), None, 0.0, None)
    return True
