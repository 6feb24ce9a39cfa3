"""Large-file references, cached by content id so a file is explored once."""

from __future__ import annotations

import time

from mnesis.models.message import FileRefPart
from mnesis.store.sql.statements import Steps, execute, one

_FIELDS = ("content_id", "path", "file_type", "token_count", "exploration_summary")


def get_file_ref(content_id: str) -> Steps[FileRefPart | None]:
    """The cached reference for a content id, if any."""
    row = yield one(
        "SELECT content_id, path, file_type, token_count, exploration_summary "
        "FROM file_refs WHERE content_id = ?",
        content_id,
    )
    return None if row is None else FileRefPart(**dict(zip(_FIELDS, row, strict=True)))


def put_file_ref(part: FileRefPart, size_bytes: int) -> Steps[None]:
    """Cache a reference; the first one for a content id stays."""
    yield execute(
        "INSERT INTO file_refs (content_id, path, file_type, token_count, size_bytes, "
        "exploration_summary, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (content_id) DO NOTHING",
        part.content_id,
        part.path,
        part.file_type,
        part.token_count,
        size_bytes,
        part.exploration_summary,
        time.time(),
    )
