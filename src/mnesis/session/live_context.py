"""The live context: the in-memory window and the store version it mirrors.

The window is a cache of the store's context view, kept so that a turn never
re-reads or re-renders the history. Every write that changes the view goes
through :class:`LiveContext`: when the store's version before the write is the
one the window mirrors, the window is updated in place; otherwise another
writer (another process, a compaction pass) got in between and the window
catches up, up to this write's own entries, so the next model call sees the
others' turns before this one and none of theirs after it. Nothing else in the
session compares versions.

Catching up reads only what the window lacks: the view changes by appends at
its end and by rewrites (a summary replacing a span, a prune, a pin), which the
store counts apart. Without a rewrite since the window last mirrored the view,
the store sends the entries after the window's last position and the window's
entries whose tool calls awaited results (a fill is the one in-place change
between rewrites); after one, the whole view. With several writers on one
session, a turn then costs a read of the others' latest turns, not of the
whole context.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from mnesis.context import ContextWindow
from mnesis.models.message import MessageStatus, TokenUsage, ToolPart, ToolStatus
from mnesis.models.results import TurnSnapshot
from mnesis.session.inputs import check_pin_budget
from mnesis.store import (
    AppendOutcome,
    ContextChanges,
    ContextEntry,
    ContextMark,
    NewMessage,
    Store,
    ToolResult,
)


class LiveContext:
    """One session's active context in memory, kept in step with the store."""

    def __init__(
        self,
        store: Store,
        session_id: str,
        entries: Iterable[ContextEntry] = (),
        version: int = 0,
        rewrites: int | None = None,
    ) -> None:
        self.window = ContextWindow(entries)
        self._store = store
        self._session_id = session_id
        # The view version the window is exactly (None: cut short of any), and the
        # store's count of rewrites it has seen (None: unknown until a write says).
        self._version: int | None = version
        self._rewrites = rewrites
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

        When another writer changed the view since the window last mirrored it,
        the window catches up, so the next model call sees that writer's turns.
        """
        outcome = await self._store.append(
            self._session_id, messages, usage=usage, cost=cost, snapshot=snapshot
        )
        joined = [
            (message, seq)
            for message, seq in zip(messages, outcome.seqs, strict=True)
            if message.status == MessageStatus.COMPLETE
        ]
        if outcome.version_before != self._version:
            await self._catch_up_to({m.id for m, _ in joined}, outcome.version_after)
            return outcome
        for (message, seq), position in zip(joined, outcome.positions, strict=True):
            self.window.append(context_entry(message, seq, position))
        self._version, self._rewrites = outcome.version_after, outcome.rewrites
        return outcome

    async def fill_tool_results(self, results: tuple[ToolResult, ...]) -> AppendOutcome:
        """Store tool results and show them after their calls in the window."""
        outcome = await self._store.fill_tool_results(self._session_id, results)
        if outcome.version_before != self._version:
            # A window cut after the calls' messages is no version of the view.
            await self._catch_up_to(set(outcome.message_ids), None)
            return outcome
        by_call = {r.tool_call_id: r for r in results}
        updated = []
        for message_id in outcome.message_ids:
            entry = self.window.get(message_id)
            if entry is not None:
                updated.append(_with_results(entry, by_call))
        self.window.replace(*updated)
        self._version, self._rewrites = outcome.version_after, outcome.rewrites
        return outcome

    async def pin(self, message_id: str, *, usable_tokens: int) -> None:
        """Pin a message; pinned tokens may take at most half of ``usable_tokens``."""
        entry = self.window.get(message_id)
        adding = entry.token_count if entry is not None and not entry.pinned else 0
        check_pin_budget(self.pinned_tokens(), adding, usable_tokens)
        outcome = await self._store.pin(self._session_id, message_id)
        if outcome.version_before != self._version or entry is None:
            await self.catch_up()
            return
        if outcome.version_after != outcome.version_before:
            self.window.replace(dataclasses.replace(entry, pinned=True))
        self._version, self._rewrites = outcome.version_after, outcome.rewrites

    async def reload(self) -> None:
        """Re-read the whole context view from the store."""
        self._take(await self._store.context_changes(self._session_id, None))

    async def catch_up(self) -> None:
        """Bring the window level with the store's view, reading only what it lacks."""
        self._take(await self._store.context_changes(self._session_id, self._mark()))

    async def _catch_up_to(self, own: Collection[str], version_if_cut: int | None) -> None:
        """Catch up after a write that found another writer's before it.

        The view is cut after this write's own entries: what a writer appended
        after them belongs to that writer's turn, not to the call this one is
        about to make. An append's own entries end the view at the version it
        made, so the cut window is labelled with that version (the next write
        sees the later ones and catches up again); ``version_if_cut`` None says
        the cut window is no version of the view at all.
        """
        changes = await self._store.context_changes(self._session_id, self._mark())
        self._take(changes, own, version_if_cut)

    def _mark(self) -> ContextMark:
        window = self.window
        return ContextMark(
            self._version, self._rewrites, window.last_position, window.awaiting_results
        )

    def _take(
        self,
        changes: ContextChanges,
        own: Collection[str] = (),
        version_if_cut: int | None = None,
    ) -> None:
        """Apply what the store sent: the whole view, or the filled entries and the
        tail; either cut after the last of ``own``."""
        window = self.window
        entries = changes.entries
        if not changes.whole:
            if changes.rewrites != self._rewrites:  # re-read whole while this read ran
                self._version = None
                return
            # Entries the window holds already (an append of this session that ended
            # while the read was on its way) are not added twice.
            last = window.last_position
            entries = tuple(e for e in entries if e.position > last)
        through_own = _through_last(entries, own)
        if changes.whole:
            keep = len(entries) if through_own is None else through_own
            window.reset(entries[:keep])
        else:
            window.replace(*(e for e in changes.filled if e != window.get(e.ref_id)))
            # Own entries already in the window (a fill's calls): none of the tail is ours.
            keep = len(entries) if not own else through_own or 0
            window.extend(entries[:keep])
        if keep == len(entries):
            self._version = changes.version
        else:
            self._version = version_if_cut if through_own is not None else None
        self._rewrites = changes.rewrites

    async def reload_if_changed_elsewhere(self) -> None:
        """Catch up if any writer changed the view since the window last mirrored it."""
        self._reload_due = False
        await self.catch_up()

    def expect_reload(self) -> None:
        """Note that the view changed behind the window (a background pass ended)."""
        self._reload_due = True

    async def reload_if_expected(self) -> None:
        """Catch up if :meth:`expect_reload` was called since the last read."""
        if self._reload_due:
            self._reload_due = False
            await self.catch_up()


def _through_last(entries: Sequence[ContextEntry], own: Collection[str]) -> int | None:
    """How many entries run through the last one of ``own``; None if none is."""
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].ref_id in own:
            return i + 1
    return None


def context_entry(message: NewMessage, seq: int, position: int) -> ContextEntry:
    """The context entry of a message just appended as ``seq``, at ``position`` of the view."""
    return ContextEntry(
        "message",
        message.id,
        message.role,
        tuple(p.part for p in message.parts),
        tuple(p.token_count + p.result_token_count for p in message.parts),
        seq=seq,
        position=position,
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
