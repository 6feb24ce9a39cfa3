"""Reading what a session has stored: messages, turn snapshots, recall over the log.

These verbs only read the immutable store; they never touch the live context
nor wait for a turn, so they sit apart from the facade's turn machinery.
"""

from __future__ import annotations

from typing import Any

from mnesis.models.info import SessionInfo
from mnesis.models.message import MessageWithParts
from mnesis.models.results import TurnSnapshot
from mnesis.recall import (
    ExpandResult,
    FileDescription,
    GrepResult,
    MessageDescription,
    Recall,
    SummaryDescription,
    memory_tool_specs,
)
from mnesis.store import Store


class StoredHistory:
    """The read-only verbs of a session over its stored history."""

    def __init__(self, store: Store, session_id: str) -> None:
        self._store = store
        self._recall = Recall(store, session_id)
        self._session_id = session_id

    def _check_open(self, *, allow_closing: bool = False) -> None:
        raise NotImplementedError

    async def info(self) -> SessionInfo:
        """This session at a glance: turns, messages, summaries, tokens, cost."""
        self._check_open()
        (info,) = await self._store.list_sessions(self._session_id)
        return info

    async def messages(self) -> list[MessageWithParts]:
        """The whole stored history, failed replies included, oldest first."""
        self._check_open()
        return await self._store.get_messages(self._session_id)

    async def history(self) -> list[TurnSnapshot]:
        """One snapshot of the context's token breakdown per completed turn."""
        self._check_open()
        return await self._store.snapshots(self._session_id)

    async def verify(self) -> list[str]:
        """Problems the store finds with this session's invariants (``[]``: none)."""
        self._check_open()
        return await self._store.verify(self._session_id)

    async def covering_summaries(self, message_ids: list[str] | None = None) -> dict[str, str]:
        """For summarised messages, the summary in the context that covers each now."""
        self._check_open()
        if message_ids is None:
            message_ids = [m.id for m in await self._store.get_messages(self._session_id)]
        return await self._store.covering_summaries(self._session_id, tuple(message_ids))

    async def grep(
        self,
        pattern: str,
        *,
        summary_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
        regex: bool = False,
    ) -> GrepResult:
        """Search the session's whole stored history (not just the active context).

        Plain text matches case-insensitively where a word starts, through the
        full-text index; ``regex=True`` scans with a time bound. Each match
        names the summary that covers it now (``None`` if verbatim).
        """
        self._check_open()
        return await self._recall.grep(
            pattern, summary_id=summary_id, limit=limit, offset=offset, regex=regex
        )

    async def describe(
        self, item_id: str
    ) -> SummaryDescription | MessageDescription | FileDescription:
        """What a summary, message or file id is, and where it sits now."""
        self._check_open()
        return await self._recall.describe(item_id)

    async def expand(
        self, summary_id: str, *, limit: int | None = None, offset: int = 0
    ) -> ExpandResult:
        """The original messages under a summary, recursively, verbatim, in order."""
        self._check_open()
        return await self._recall.expand(summary_id, limit=limit, offset=offset)

    def memory_tools(self) -> list[dict[str, Any]]:
        """Definitions of ``lcm_grep``, ``lcm_describe``, ``lcm_expand`` (OpenAI format)."""
        return memory_tool_specs()
