"""Large files as content-addressed references.

A file at or below ``FileConfig.inline_threshold`` tokens goes into the
message as text. A bigger one becomes a :class:`FileRefPart`: its sha256 id,
path, detected type, token count and a structural outline from an explorer.
The content itself is never copied into the store; the reference row is
cached by content hash, so the same file is explored once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mnesis.errors import InvalidInputError
from mnesis.files.explorers import describe_binary, detect_type, explore
from mnesis.models.config import FileConfig
from mnesis.models.message import FileRefPart, TextPart
from mnesis.store.base import Store
from mnesis.tokens import TokenEstimator

EXACT_COUNT_LIMIT = 1_000_000  # bytes; above this, tokens are estimated from the size


def content_id_of(data: bytes) -> str:
    """The content address of a file: ``file_`` + the first 32 hex digits of its sha256."""
    return "file_" + hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Read:
    path: str
    data: bytes
    content_id: str
    file_type: str


def _read(path: str | os.PathLike[str]) -> _Read:
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise InvalidInputError(f"file not found: {resolved}")
    if not resolved.is_file():
        raise InvalidInputError(f"not a regular file: {resolved}")
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {resolved}: {exc.strerror or exc}") from exc
    return _Read(str(resolved), data, content_id_of(data), detect_type(str(resolved), data[:8192]))


class LargeFileHandler:
    """Turns files into inline text or references.

    Args:
        config: ``FileConfig`` (``inline_threshold`` in tokens).
        estimator: Token counter (default: cl100k).
        store: Where reference rows are cached by content hash (optional).
    """

    def __init__(
        self,
        config: FileConfig | None = None,
        *,
        estimator: TokenEstimator | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config or FileConfig()
        self.estimator = estimator or TokenEstimator()
        self.store = store

    async def handle(self, path: str | os.PathLike[str]) -> TextPart | FileRefPart:
        """The part that stands for ``path`` in a message."""
        read = await asyncio.to_thread(_read, path)
        if read.file_type != "binary":
            text = read.data.decode("utf-8", errors="replace")
            tokens = (
                self.estimator.estimate(text)
                if len(read.data) <= EXACT_COUNT_LIMIT
                else len(read.data) // 4
            )
            if tokens <= self.config.inline_threshold:
                return TextPart(text=f"[file {read.path}]\n{text}")
        if self.store is not None:
            cached = await self.store.get_file_ref(read.content_id)
            if cached is not None:
                return cached.model_copy(update={"path": read.path})
        part = await asyncio.to_thread(self._reference, read)
        if self.store is not None:
            await self.store.put_file_ref(part, len(read.data))
        return part

    def _reference(self, read: _Read) -> FileRefPart:
        if read.file_type == "binary":
            return FileRefPart(
                content_id=read.content_id,
                path=read.path,
                file_type="binary",
                token_count=len(read.data) // 4,
                exploration_summary=describe_binary(read.data[:64], len(read.data)),
            )
        text = read.data.decode("utf-8", errors="replace")
        tokens = (
            self.estimator.estimate(text)
            if len(read.data) <= EXACT_COUNT_LIMIT
            else len(read.data) // 4
        )
        return FileRefPart(
            content_id=read.content_id,
            path=read.path,
            file_type=read.file_type,
            token_count=tokens,
            exploration_summary=explore(read.file_type, text),
        )


def file_status(path: str, content_id: str) -> Literal["unchanged", "changed", "missing"]:
    """``unchanged``, ``changed`` or ``missing``: the file at ``path`` now."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "missing"
    return "unchanged" if content_id_of(data) == content_id else "changed"
