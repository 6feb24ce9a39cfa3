"""The live context: the in-memory window and the store version it mirrors.

The window is a cache of the store's context view, kept so that a turn never
re-reads or re-renders the history. Every write that changes the view goes
through :class:`LiveContext`: when the store's version before the write is the
one the window mirrors, the window is updated in place; otherwise another
writer (another process, a compaction pass) got in between and the view is
re-read, up to this write's own entries, so the next model call sees the
others' turns before this one and none of theirs after it. Nothing else in the
session compares versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from mnesis.context import ContextWindow
from mnesis.models.message import MessageStatus, TokenUsage, ToolPart, ToolStatus
from mnesis.models.results import TurnSnapshot
from mnesis.session.inputs import check_pin_budget
from mnesis.store import AppendOutcome, ContextEntry, NewMessage, Store, ToolResult


class LiveContext:
    """One session's active context in memory, kept in step with the store."""

    def __init__(
        self, store: Store, session_id: str, entries: Iterable[ContextEntry] = (), version: int = 0
    ) -> None:
        self.window = ContextWindow(entries)
        self._store = store
        self._session_id = session_id
        self._version = version
        self._reload_due = False

    @property
    def token_count(self) -> int:
        """Tokens of the context's entries, framing included (system prompt excluded)."""
        return self.window.token_count

    def pinned_tokens(self) -> int:
        """Tokens of the pinned entries, which every future context keeps verbatim."""
        return sum(e.token_count for e in self.window.entries if e.pinned)

    async def append(
        self,
        messages: tuple[NewMessage, ...],
        *,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        snapshot: TurnSnapshot | None = None,
    ) -> AppendOutcome:
        """Append messages (and a turn's usage) to the store and to the window.

        When another writer appended since the window last mirrored the view,
        the view is re-read, so the next model call sees that writer's turns.
        """
        outcome = await self._store.append(
            self._session_id, messages, usage=usage, cost=cost, snapshot=snapshot
        )
        if outcome.version_before != self._version:
            await self._reload_as_of(outcome, {m.id for m in messages})
            return outcome
        for message in messages:
            if message.status == MessageStatus.COMPLETE:
                self.window.append(context_entry(message))
        self._version = outcome.version_after
        return outcome

    async def fill_tool_results(self, results: tuple[ToolResult, ...]) -> None:
        """Store tool results and show them after their calls in the window."""
        outcome = await self._store.fill_tool_results(self._session_id, results)
        if outcome.version_before != self._version:
            await self._reload_as_of(outcome, set(outcome.message_ids))
            return
        by_call = {r.tool_call_id: r for r in results}
        updated = []
        for message_id in outcome.message_ids:
            entry = self.window.get(message_id)
            if entry is not None:
                updated.append(_with_results(entry, by_call))
        self.window.replace(*updated)
        self._version = outcome.version_after

    async def pin(self, message_id: str, *, usable_tokens: int) -> None:
        """Pin a message; pinned tokens may take at most half of ``usable_tokens``."""
        entry = self.window.get(message_id)
        adding = entry.token_count if entry is not None and not entry.pinned else 0
        check_pin_budget(self.pinned_tokens(), adding, usable_tokens)
        await self._store.pin(self._session_id, message_id)
        await self.reload()

    async def reload(self) -> None:
        """Re-read the context view from the store."""
        self._version, entries = await self._store.context_entries(self._session_id)
        self.window.reset(entries)

    async def _reload_as_of(self, outcome: AppendOutcome, own: set[str]) -> None:
        """Re-read the view after a write that found another writer's before it.

        The view is cut after this write's own entries: what a writer appended
        after them belongs to that writer's turn, not to the call this one is
        about to make. The cut view is labelled with this write's version, so
        the next write sees the later ones and reloads again.
        """
        version, entries = await self._store.context_entries(self._session_id)
        last_own = [i for i, entry in enumerate(entries) if entry.ref_id in own]
        if last_own:
            version, entries = outcome.version_after, entries[: last_own[-1] + 1]
        self._version = version
        self.window.reset(entries)

    async def reload_if_changed_elsewhere(self) -> None:
        """Re-read the view if any writer changed it since the window last mirrored it."""
        self._reload_due = False
        record = await self._store.get_session(self._session_id)
        if record.context_version != self._version:
            await self.reload()

    def expect_reload(self) -> None:
        """Note that the view changed behind the window (a background pass ended)."""
        self._reload_due = True

    async def reload_if_expected(self) -> None:
        """Re-read the view if :meth:`expect_reload` was called since the last read."""
        if self._reload_due:
            self._reload_due = False
            await self.reload()


def context_entry(message: NewMessage) -> ContextEntry:
    """The context entry of a message just appended."""
    return ContextEntry(
        "message",
        message.id,
        message.role,
        tuple(p.part for p in message.parts),
        tuple(p.token_count + p.result_token_count for p in message.parts),
    )


def _with_results(entry: ContextEntry, by_call: dict[str, ToolResult]) -> ContextEntry:
    parts, tokens = [], []
    for part, count in zip(entry.parts, entry.part_tokens, strict=True):
        result = by_call.get(part.tool_call_id) if isinstance(part, ToolPart) else None
        if isinstance(part, ToolPart) and result is not None:
            status = ToolStatus.ERROR if result.error else ToolStatus.COMPLETED
            part = part.model_copy(
                update={"output": result.output, "error_message": result.error, "status": status}
            )
            count += result.token_count
        parts.append(part)
        tokens.append(count)
    return dataclasses.replace(entry, parts=tuple(parts), part_tokens=tuple(tokens))


def copy_chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of a window's chat message that a caller may change freely."""
    copy = dict(message)
    if "tool_calls" in copy:
        copy["tool_calls"] = [
            {**call, "function": dict(call["function"])} for call in copy["tool_calls"]
        ]
    return copy
