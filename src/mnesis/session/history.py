"""Reading what a session has stored: messages, turn snapshots, recall over the log.

These verbs only read the immutable store; they never touch the live context
nor wait for a turn, so they sit apart from the facade's turn machinery.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from mnesis.models.info import SessionInfo
from mnesis.models.message import Message, MessageWithParts, TextPart
from mnesis.models.results import TurnSnapshot
from mnesis.recall import (
    ExpandResult,
    FileDescription,
    GrepResult,
    MessageDescription,
    Recall,
    SearchResult,
    SummaryDescription,
    memory_tool_specs,
)
from mnesis.session.embedding import warn_words_only
from mnesis.store import Store
from mnesis.store.records import SummaryRecord


class TurnHistory(list[TurnSnapshot]):
    """The turn snapshots as a list, which can also be awaited.

    ``session.history()`` is a plain list (as in mnesis 0.4.0) of the snapshots
    this session object knows; ``await session.history()`` reads the store
    afresh, turns other processes recorded included.
    """

    def __init__(
        self,
        snapshots: list[TurnSnapshot],
        refresh: Callable[[], Awaitable[list[TurnSnapshot]]] | None = None,
    ) -> None:
        super().__init__(snapshots)
        self._refresh = refresh

    def __await__(self) -> Generator[Any, None, TurnHistory]:
        return self._fresh().__await__()

    async def _fresh(self) -> TurnHistory:
        if self._refresh is None:
            return self
        return TurnHistory(await self._refresh())


class TurnLog:
    """The turn snapshots one session object knows, none of them read at load.

    A session resumed after N turns knows that turns 1..N are stored, and reads
    none of them until a list of them is asked for: loading costs the context,
    not the history. The first ``session.history()`` (synchronous, as in
    mnesis 0.4.0) reads them while its caller waits, once; a stored turn never
    changes, so they are kept. The turns stored after the load (this session's,
    which the writer appends as the store numbers them, and other writers',
    added by :meth:`catch_up`) are kept in :attr:`recent` as they come.
    """

    def __init__(self, store: Store, session_id: str, stored: int) -> None:
        self._store = store
        self._session_id = session_id
        self._stored = stored  # turns 1..stored were in the store when the session was read
        self._early: list[TurnSnapshot] | None = None if stored else []
        self.recent: list[TurnSnapshot] = []  # turns stored + 1, ... in order

    @property
    def count(self) -> int:
        """How many turns this session object knows of."""
        return self._stored + len(self.recent)

    def _gapless(self) -> int:
        """How many of :attr:`recent` follow the early turns without a gap."""
        recent, base = self.recent, self._stored
        if not recent or recent[-1].turn_index == base + len(recent):
            return len(recent)  # numbered from base + 1 on, strictly rising: no gap
        known = 0
        while known < len(recent) and recent[known].turn_index == base + known + 1:
            known += 1
        return known

    async def catch_up(self) -> None:
        """Add the turns other writers stored, reading only those after the last
        turn known without a gap."""
        known = self._gapless()
        self.recent[known:] = await self._store.snapshots(
            self._session_id, after_turn=self._stored + known
        )

    def known(self) -> list[TurnSnapshot]:
        """Every turn known, in order; the first call after a load reads the
        turns stored before it, the caller waiting for that read."""
        if self._early is None:
            self._early = self._store.snapshots_now(self._session_id, through_turn=self._stored)
        return self._early + self.recent

    async def stored_now(self) -> list[TurnSnapshot]:
        """Every turn the store holds now, other writers' included; only those
        after the turns known without a gap are read."""
        if self._early is None:
            every = await self._store.snapshots(self._session_id)
            self._early = every[: self._stored]
            return every
        known = self._gapless()
        later = await self._store.snapshots(self._session_id, after_turn=self._stored + known)
        return self._early + self.recent[:known] + later


def summary_message(session_id: str, summary: SummaryRecord) -> MessageWithParts:
    """A summary node shown as the assistant message 0.4.0 stored for it."""
    return MessageWithParts(
        message=Message(
            id=summary.id,
            session_id=session_id,
            seq=summary.last_seq,
            role="assistant",
            created_at=round(summary.created_at * 1000),
            model=summary.model,
            token_count=summary.token_count,
            is_summary=True,
            mode="compaction",
        ),
        parts=[TextPart(text=summary.text)],
    )


def interleave_summaries(
    messages: list[MessageWithParts], summaries: list[MessageWithParts]
) -> list[MessageWithParts]:
    """Messages and summaries in one list, each summary after the messages
    written before it."""
    stamps: list[int] = []
    for m in messages:  # seq order; a clock step back must not unsort the keys
        stamps.append(max(m.message.created_at, stamps[-1]) if stamps else m.message.created_at)
    slots: dict[int, list[MessageWithParts]] = {}
    for summary in sorted(summaries, key=lambda s: s.message.created_at):
        slots.setdefault(bisect_right(stamps, summary.message.created_at), []).append(summary)
    merged: list[MessageWithParts] = list(slots.get(0, []))
    for index, message in enumerate(messages, 1):
        merged.append(message)
        merged.extend(slots.get(index, []))
    return merged


class StoredHistory:
    """The read-only verbs of a session over its stored history."""

    def __init__(self, store: Store, session_id: str, stored_turns: int = 0) -> None:
        self._store = store
        self._recall = Recall(store, session_id)
        self._session_id = session_id
        self._turn_log = TurnLog(store, session_id, stored_turns)
        self._hint_words_only = False  # search() says once how to enable meaning-based recall

    def _check_open(self, *, allow_closing: bool = False) -> None:
        raise NotImplementedError

    async def info(self) -> SessionInfo:
        """This session at a glance: turns, messages, summaries, tokens, cost."""
        self._check_open()
        (info,) = await self._store.list_sessions(self._session_id)
        return info

    async def messages(self) -> list[MessageWithParts]:
        """The whole stored history, oldest first: every message (failed replies
        included) and every compaction summary (``m.is_summary``), each summary
        after the messages written before it."""
        self._check_open()
        stored = await self._store.get_messages(self._session_id)
        summaries = [summary_message(self._session_id, s) for s in await self._summaries()]
        return interleave_summaries(self._tag(stored), summaries)

    async def conversation_messages(self) -> list[MessageWithParts]:
        """The stored conversation without compaction summaries, oldest first."""
        self._check_open()
        return self._tag(await self._store.get_messages(self._session_id))

    def history(self) -> TurnHistory:
        """One snapshot of the context's token breakdown per completed turn.

        A list, as in mnesis 0.4.0; ``await session.history()`` also works and
        reads the store afresh. A resumed session reads its earlier turns on the
        first call (synchronously: the caller, even the event loop, waits for
        that one read), not when it is loaded.
        """
        self._check_open()
        return TurnHistory(self._turn_log.known(), self._read_snapshots)

    async def _read_snapshots(self) -> list[TurnSnapshot]:
        self._check_open()
        return await self._turn_log.stored_now()

    def _tag(self, messages: list[MessageWithParts]) -> list[MessageWithParts]:
        """Messages with the session's agent, as 0.4.0 stored it on each row."""
        agent = self._agent()
        if agent == "default":
            return messages
        return [
            m.model_copy(update={"message": m.message.model_copy(update={"agent": agent})})
            for m in messages
        ]

    def _agent(self) -> str:
        return "default"

    async def _summaries(self) -> list[SummaryRecord]:
        """Every summary node of the session: those in the context and all they cover."""
        _, entries = await self._store.context_entries(self._session_id)
        pending = [e.summary for e in entries if e.summary is not None]
        found: dict[str, SummaryRecord] = {}
        while pending:
            node = pending.pop()
            if node.id in found:
                continue
            found[node.id] = node
            if node.kind == "condensed":
                for kind, source_id in await self._store.summary_sources(node.id):
                    if kind == "summary" and source_id not in found:
                        pending.append(await self._store.get_summary(source_id))
        return list(found.values())

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

    async def search(self, query: str, *, limit: int = 10, offset: int = 0) -> SearchResult:
        """Find what was said, even when asked in other words, best match first.

        Ranks the whole stored history (summarised and pruned messages, tool
        calls and results, summary texts) by its words and, with an embedder
        (``mnesis[semantic]``), by meaning; each match names the summary that
        covers it now (``None`` if verbatim). Messages the background worker has
        not embedded yet are found by their words.
        """
        self._check_open()
        if self._recall.embedder is None and self._hint_words_only:
            warn_words_only()
        return await self._recall.search(query, limit=limit, offset=offset)

    def memory_tools(self) -> list[dict[str, Any]]:
        """Definitions of ``lcm_grep``, ``lcm_describe``, ``lcm_expand``, ``lcm_search``
        (OpenAI format)."""
        return memory_tool_specs()
