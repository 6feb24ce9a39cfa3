"""A mnesis session opened on first use, for adapters a framework builds synchronously.

Frameworks construct their session and history objects in plain code (no
``await``); the adapter keeps what it needs to create or load the mnesis
session and opens it when the framework first calls in.
"""

from __future__ import annotations

import asyncio
import os
from types import TracebackType
from typing import Any, Self

from mnesis.errors import InvalidInputError, SessionNotFoundError
from mnesis.models.config import MnesisConfig
from mnesis.models.ids import new_id
from mnesis.session import MnesisSession


class LazySession:
    """Holds a mnesis session id and opens the session (created, or loaded when the
    id is stored) on first use; ``session=`` uses an open one instead."""

    def __init__(
        self,
        session_id: str | None = None,
        *,
        model: str = "openai/gpt-4o",
        db_path: str | os.PathLike[str] | None = None,
        config: MnesisConfig | None = None,
        system_prompt: str = "You are a helpful assistant.",
        session: MnesisSession | None = None,
        **options: Any,
    ) -> None:
        if session is not None and session_id not in (None, session.id):
            raise InvalidInputError("session_id and session= name different sessions")
        self.session_id: str = session.id if session is not None else session_id or new_id("ses")
        self._session = session
        self._owned = session is None
        self._create = {
            "model": model,
            "db_path": db_path,
            "config": config,
            "system_prompt": system_prompt,
            **options,
        }
        self._opening = asyncio.Lock()

    async def mnesis_session(self) -> MnesisSession:
        """The mnesis session behind this object (opened on first use): for
        ``grep``, ``describe``, ``expand``, ``search``, ``history()``, ``compact()``."""
        if self._session is None:
            async with self._opening:
                if self._session is None:
                    self._session = await self._open()
        return self._session

    async def _open(self) -> MnesisSession:
        opts = self._create
        extra = {k: v for k, v in opts.items() if k not in ("model", "system_prompt")}
        try:
            return await MnesisSession.load(self.session_id, **extra)
        except SessionNotFoundError:
            return await MnesisSession.create(session_id=self.session_id, **opts)

    async def close(self) -> None:
        """Close the mnesis session if this object opened it. Idempotent."""
        if self._session is not None and self._owned:
            await self._session.close()

    async def __aenter__(self) -> Self:
        await self.mnesis_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
