"""Writing a session's turns: messages, usage, the turn snapshot and the events, together.

A turn's reply (or a recorded turn) goes to the store in one append with its
usage and a snapshot of the context it was answered from, so the history and
the totals never disagree; then the session's running totals follow and one
``message.created`` event per message is published.
"""

from __future__ import annotations

import time

from mnesis.events.bus import MnesisEvent
from mnesis.models.ids import new_id
from mnesis.models.message import MessagePart, TokenUsage
from mnesis.models.results import CompactionResult, TurnSnapshot
from mnesis.session.compaction import CompactionScheduler
from mnesis.session.core import SessionCore
from mnesis.store import NewMessage
from mnesis.tokens import MESSAGE_OVERHEAD


class SessionWriter:
    """Appends one session's messages and keeps its totals and events in step."""

    def __init__(self, core: SessionCore, compaction: CompactionScheduler) -> None:
        self._core = core
        self._compaction = compaction

    async def append(self, messages: tuple[NewMessage, ...]) -> None:
        """Append messages that complete no turn (a user message, a failed reply)."""
        await self._core.live.append(messages)
        self._publish_created(messages)

    async def append_turn(
        self,
        messages: tuple[NewMessage, ...],
        usage: TokenUsage,
        cost: float,
        snapshot: TurnSnapshot,
    ) -> None:
        """Append the messages that complete a turn, with its usage and snapshot."""
        core = self._core
        await core.live.append(messages, usage=usage, cost=cost, snapshot=snapshot)
        core.totals.add(usage, cost, turn=True)
        self._publish_created(messages)

    async def append_user(self, parts: list[MessagePart]) -> str:
        """Append a user message; returns its id."""
        message = self._core.counter.counted_message(new_id("msg"), "user", parts, time.time())
        await self.append((message,))
        return message.id

    async def record_turn(
        self,
        user_parts: list[MessagePart],
        assistant_parts: list[MessagePart],
        *,
        tokens: TokenUsage | None,
        finish_reason: str,
        hard_result: CompactionResult | None,
    ) -> tuple[NewMessage, NewMessage, TokenUsage]:
        """Append a turn the caller's own SDK produced; without ``tokens``, estimate them.

        Returns:
            The user message, the assistant message and the usage counted.
        """
        core = self._core
        count, now = core.counter.counted_message, time.time()
        user = count(new_id("msg"), "user", user_parts, now)
        assistant = count(
            new_id("msg"),
            "assistant",
            assistant_parts,
            now,
            finish_reason=str(finish_reason),
            tokens=tokens,
        )
        usage = tokens or TokenUsage(
            input=core.context_tokens() + user.token_count, output=assistant.token_count
        )
        cost = core.limits.cost(tokens) if tokens is not None else 0.0
        snapshot = self.snapshot(
            extra_tokens=user.token_count + assistant.token_count + 2 * MESSAGE_OVERHEAD,
            hard_result=hard_result,
        )
        await self.append_turn((user, assistant), usage, cost, snapshot)
        return user, assistant, usage

    def snapshot(
        self, *, extra_tokens: int, hard_result: CompactionResult | None = None
    ) -> TurnSnapshot:
        """The context's breakdown once ``extra_tokens`` more are appended."""
        core = self._core
        breakdown = core.live.window.breakdown(core.system_tokens())
        will_start = self._compaction.would_start(breakdown.total + extra_tokens)
        return TurnSnapshot(
            turn_index=core.totals.turns + 1,
            role="assistant",
            context_tokens=breakdown.model_copy(
                update={
                    "messages": breakdown.messages + extra_tokens,
                    "total": breakdown.total + extra_tokens,
                }
            ),
            compaction_triggered=will_start or hard_result is not None,
            compact_result=hard_result,
        )

    def _publish_created(self, messages: tuple[NewMessage, ...]) -> None:
        core = self._core
        for message in messages:
            core.bus.publish(
                MnesisEvent.MESSAGE_CREATED,
                {
                    "session_id": core.id,
                    "message_id": message.id,
                    "role": message.role,
                    "token_count": message.token_count,
                    "status": str(message.status),
                },
            )
