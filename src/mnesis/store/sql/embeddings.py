"""Stored vectors for meaning-based recall, once for both SQL backends.

The backlog is found by scanning a session's messages in sequence order, a
page at a time, and asking which of their bodies have no vector under the
embedder: a worker resumes after the last message it scanned instead of
re-reading the history, and after a restart one pass over the session finds
everything a crash left out. Summaries are few, so their backlog is one
anti-join. Vectors are written with ``ON CONFLICT DO NOTHING``: two workers
embedding the same text (two processes on one session) store it once.
"""

from __future__ import annotations

from mnesis.models.message import ToolPart
from mnesis.store.sql.rows import PART_COLUMNS, part_from_row, part_index_texts
from mnesis.store.sql.statements import Steps, all_rows, many, value
from mnesis.store.vectors import (
    EmbeddingBacklog,
    EmbeddingTask,
    NewEmbedding,
    StoredEmbedding,
    body_item,
)

_PAGE_ROWS = (
    f"SELECT m.seq, m.id, p.id, {PART_COLUMNS} FROM "  # noqa: S608
    "(SELECT id, seq FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?) m "
    "JOIN parts p ON p.message_id = m.id ORDER BY m.seq, p.idx"
)
_LAST_SEQ = (
    "SELECT m.seq, m.id FROM "
    "(SELECT seq, id FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?) m "
    "ORDER BY m.seq DESC LIMIT 1"
)
_DONE_ITEMS = "SELECT item FROM embeddings WHERE embedder = ? AND chunk = 0 AND item = ANY(?)"


def backlog(session_id: str, embedder: str, after_seq: int, limit: int) -> Steps[EmbeddingBacklog]:
    """Bodies of the ``limit`` messages after ``after_seq`` that have no vector yet."""
    rows = yield all_rows(_PAGE_ROWS, session_id, after_seq, limit)
    last = yield all_rows(_LAST_SEQ, session_id, after_seq, limit)
    last_seq = int(last[0][0]) if last else after_seq
    last_id = str(last[0][1]) if last else None
    bodies: list[EmbeddingTask] = []
    first_open: int | None = None
    for row in rows:
        seq, message_id, part_id = int(row[0]), str(row[1]), int(row[2])
        part = part_from_row(row, 3)
        if isinstance(part, ToolPart) and not part.has_result and first_open is None:
            first_open = seq
        for offset, text in part_index_texts(part):
            bodies.append(
                EmbeddingTask(session_id, body_item(part_id * 2 + offset), message_id, text)
            )
    if not bodies:
        return EmbeddingBacklog((), last_seq, first_open, last_id)
    done_rows = yield all_rows(_DONE_ITEMS, embedder, [b.item for b in bodies])
    done = {str(r[0]) for r in done_rows}
    missing = tuple(b for b in bodies if b.item not in done)
    return EmbeddingBacklog(missing, last_seq, first_open, last_id)


def summary_backlog(session_id: str, embedder: str, limit: int) -> Steps[list[EmbeddingTask]]:
    """Summaries of the session with no vector yet under ``embedder``."""
    rows = yield all_rows(
        "SELECT s.id, s.text FROM summaries s WHERE s.session_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM embeddings e WHERE e.embedder = ? AND e.item = s.id AND e.chunk = 0) "
        "ORDER BY s.first_seq, s.depth LIMIT ?",
        session_id,
        embedder,
        limit,
    )
    return [EmbeddingTask(session_id, str(r[0]), None, str(r[1])) for r in rows]


def save(embedder: str, rows: tuple[NewEmbedding, ...]) -> Steps[None]:
    """Store vectors; a chunk already stored under ``embedder`` stays as it is.

    Each session's row is locked first, so two processes storing vectors of one
    session commit them in id order (PostgreSQL hands ids out before commit; a
    copy reading on after the last id it saw would miss one committed late), and
    an erasure cannot interleave: a vector of a message or summary erased while
    it was being computed is dropped, not stored.
    """
    if not rows:
        return
    live_sessions: set[str] = set()
    for session_id in sorted({r.session_id for r in rows}):  # one order: no deadlock
        found = yield value("SELECT 1 FROM sessions WHERE id = ? FOR NO KEY UPDATE", session_id)
        if found is not None:
            live_sessions.add(session_id)
    message_ids = sorted({r.message_id for r in rows if r.message_id is not None})
    summary_ids = sorted({r.item for r in rows if r.message_id is None})
    live: set[str] = set()
    if message_ids:
        found_rows = yield all_rows("SELECT id FROM messages WHERE id = ANY(?)", message_ids)
        live.update(str(r[0]) for r in found_rows)
    if summary_ids:
        found_rows = yield all_rows("SELECT id FROM summaries WHERE id = ANY(?)", summary_ids)
        live.update(str(r[0]) for r in found_rows)
    kept = [
        r
        for r in rows
        if r.session_id in live_sessions
        and (r.message_id if r.message_id is not None else r.item) in live
    ]
    if not kept:
        return
    yield many(
        "INSERT INTO embeddings (embedder, session_id, item, chunk, message_id, vector) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(embedder, r.session_id, r.item, r.chunk, r.message_id, r.vector) for r in kept],
    )


def load(session_id: str, embedder: str, after_id: int, limit: int) -> Steps[list[StoredEmbedding]]:
    """The session's vectors under ``embedder`` stored after ``after_id``, in order."""
    rows = yield all_rows(
        "SELECT id, item, message_id, vector FROM embeddings "
        "WHERE embedder = ? AND session_id = ? AND id > ? ORDER BY id LIMIT ?",
        embedder,
        session_id,
        after_id,
        limit,
    )
    return [StoredEmbedding(int(r[0]), str(r[1]), r[2], bytes(r[3])) for r in rows]


def count(session_id: str, embedder: str) -> Steps[int]:
    """How many chunks of the session are stored under ``embedder``."""
    rows = yield all_rows(
        "SELECT COUNT(*) FROM embeddings WHERE embedder = ? AND session_id = ?",
        embedder,
        session_id,
    )
    return int(rows[0][0])


def summaries_with(session_id: str, word: str, limit: int) -> Steps[list[tuple[str, str]]]:
    """``(id, text)`` of the session's summaries whose text holds ``word`` (any case)."""
    pattern = "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = yield all_rows(
        "SELECT id, text FROM summaries WHERE session_id = ? AND LOWER(text) LIKE ? ESCAPE '\\' "
        "ORDER BY first_seq LIMIT ?",
        session_id,
        pattern,
        limit,
    )
    return [(str(r[0]), str(r[1])) for r in rows]
