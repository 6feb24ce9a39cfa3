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
from mnesis.store.sql.statements import Steps, all_rows, many
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
    "SELECT MAX(seq) FROM "
    "(SELECT seq FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?) m"
)
_DONE_ITEMS = "SELECT item FROM embeddings WHERE embedder = ? AND chunk = 0 AND item = ANY(?)"


def backlog(session_id: str, embedder: str, after_seq: int, limit: int) -> Steps[EmbeddingBacklog]:
    """Bodies of the ``limit`` messages after ``after_seq`` that have no vector yet."""
    rows = yield all_rows(_PAGE_ROWS, session_id, after_seq, limit)
    last = yield all_rows(_LAST_SEQ, session_id, after_seq, limit)
    last_seq = int(last[0][0]) if last and last[0][0] is not None else after_seq
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
        return EmbeddingBacklog((), last_seq, first_open)
    done_rows = yield all_rows(_DONE_ITEMS, embedder, [b.item for b in bodies])
    done = {str(r[0]) for r in done_rows}
    missing = tuple(b for b in bodies if b.item not in done)
    return EmbeddingBacklog(missing, last_seq, first_open)


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
    """Store vectors; a chunk already stored under ``embedder`` stays as it is."""
    if not rows:
        return
    yield many(
        "INSERT INTO embeddings (embedder, session_id, item, chunk, message_id, vector) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(embedder, r.session_id, r.item, r.chunk, r.message_id, r.vector) for r in rows],
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
