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

from pydantic import BaseModel, ConfigDict, model_validator

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


def _given(path: str | os.PathLike[str], content: str | bytes) -> _Read:
    data = content.encode("utf-8") if isinstance(content, str) else content
    name = os.fspath(path)
    return _Read(name, data, content_id_of(data), detect_type(name, data[:8192]))


class FileHandleResult(BaseModel):
    """What :meth:`LargeFileHandler.handle_file` made of a file (mnesis 0.4.0's shape).

    Exactly one of ``inline_content`` (the file's text, small enough to go in
    the message) and ``file_ref`` (a reference with its exploration summary)
    is set; :attr:`is_inline` tells which.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    inline_content: str | None = None
    file_ref: FileRefPart | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FileHandleResult:
        if (self.inline_content is None) == (self.file_ref is None):
            raise ValueError("a FileHandleResult holds inline_content or file_ref, not both")
        return self

    @property
    def is_inline(self) -> bool:
        return self.inline_content is not None


class LargeFileHandler:
    """Turns files into inline text or references.

    ``LargeFileHandler(config, estimator=..., store=...)``, or as in mnesis
    0.4.0 ``LargeFileHandler(store, estimator, config)``, or
    :meth:`from_session`.

    Args:
        config: ``FileConfig`` (``inline_threshold`` in tokens).
        estimator: Token counter (default: cl100k).
        store: Where reference rows are cached by content hash (optional).
    """

    def __init__(
        self,
        config: FileConfig | Store | None = None,
        estimator: TokenEstimator | None = None,
        file_config: FileConfig | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        if config is not None and not isinstance(config, FileConfig):
            if store is not None:
                raise InvalidInputError("store given twice: positionally and as store=")
            store, config = config, None
        if config is not None and file_config is not None:
            raise InvalidInputError("FileConfig given twice")
        self.config = config or file_config or FileConfig()
        self.estimator = estimator or TokenEstimator()
        self.store = store

    @classmethod
    def from_session(cls, session: object) -> LargeFileHandler:
        """A handler with a session's store, token counter and ``FileConfig``."""
        handler = getattr(session, "file_handler", None)
        if not isinstance(handler, LargeFileHandler):
            raise InvalidInputError("from_session() takes an open MnesisSession")
        return cls(handler.config, estimator=handler.estimator, store=handler.store)

    async def handle(self, path: str | os.PathLike[str]) -> TextPart | FileRefPart:
        """The part that stands for ``path`` in a message."""
        read = await asyncio.to_thread(_read, path)
        outcome = await self._inline_or_reference(read)
        if isinstance(outcome, str):
            return TextPart(text=f"[file {read.path}]\n{outcome}")
        return outcome

    async def handle_file(
        self, path: str | os.PathLike[str], *, content: str | bytes | None = None
    ) -> FileHandleResult:
        """The file's text when it fits ``inline_threshold``, else a reference.

        With ``content`` the file is not read: ``path`` only names it (its
        extension picks the explorer).
        """
        if content is None:
            read = await asyncio.to_thread(_read, path)
        else:
            read = _given(path, content)
        outcome = await self._inline_or_reference(read)
        if isinstance(outcome, str):
            return FileHandleResult(path=os.fspath(path), inline_content=outcome)
        return FileHandleResult(path=os.fspath(path), file_ref=outcome)

    async def _inline_or_reference(self, read: _Read) -> str | FileRefPart:
        if read.file_type != "binary":
            text = read.data.decode("utf-8", errors="replace")
            tokens = (
                self.estimator.estimate(text)
                if len(read.data) <= EXACT_COUNT_LIMIT
                else len(read.data) // 4
            )
            if tokens <= self.config.inline_threshold:
                return text
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
