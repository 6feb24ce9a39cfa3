"""Writing a session's turns: messages, usage, the turn snapshot and the events, together.

A turn's reply (or a recorded turn) goes to the store in one append with its
usage and a snapshot of the context it was answered from, so the history and
the totals never disagree; then the session's running totals follow the
store's (which count every writer's turns) and one ``message.created`` event
per message is published. The store numbers the turn: several processes may
write one session, so no count a process keeps can say which turn is next.

A model's reply is paid for and cannot be asked for again, so a reply the
store refuses as a turn is kept as a failed message with its text and usage;
only when that fails too is it lost, and the error raised names it.
"""

from __future__ import annotations

import dataclasses
import time

from mnesis.errors import MnesisStoreError
from mnesis.events.bus import MnesisEvent
from mnesis.models.ids import new_id
from mnesis.models.message import MessagePart, MessageStatus, TextPart, TokenUsage, ToolPart
from mnesis.models.results import CompactionResult, TurnSnapshot
from mnesis.session.compaction import CompactionScheduler
from mnesis.session.core import SessionCore
from mnesis.store import AppendOutcome, NewMessage, ToolResult
from mnesis.tokens import MESSAGE_OVERHEAD


class SessionWriter:
    """Appends one session's messages and keeps its totals and events in step."""

    def __init__(self, core: SessionCore, compaction: CompactionScheduler) -> None:
        self._core = core
        self._compaction = compaction
        # The turns this session knows (``history()``): those stored when it was
        # loaded, then each it writes, as the store numbered it.
        self.snapshots: list[TurnSnapshot] = []

    async def append(self, messages: tuple[NewMessage, ...]) -> None:
        """Append messages that complete no turn (a user message, a failed reply)."""
        self._core.totals.follow(await self._core.live.append(messages))
        self._publish_created(messages)

    async def append_turn(
        self,
        messages: tuple[NewMessage, ...],
        usage: TokenUsage,
        cost: float,
        snapshot: TurnSnapshot,
    ) -> AppendOutcome:
        """Append the messages that complete a turn, with its usage and snapshot.

        Returns:
            The store's outcome; ``turn_index`` is the number the store gave the turn.
        """
        core = self._core
        outcome = await core.live.append(messages, usage=usage, cost=cost, snapshot=snapshot)
        core.totals.follow(outcome)
        self.snapshots.append(snapshot.model_copy(update={"turn_index": outcome.turn_index}))
        self._publish_created(messages)
        return outcome

    async def append_reply(
        self, reply: NewMessage, usage: TokenUsage, cost: float, snapshot: TurnSnapshot
    ) -> AppendOutcome:
        """Append a model's reply that completes a turn; never drop it silently.

        Raises:
            Exception: The store's error, after the reply was kept as a failed
                message (a note on the error names it).
            MnesisStoreError: The reply could not be kept at all; the message
                says which reply and what it held.
        """
        try:
            return await self.append_turn((reply,), usage, cost, snapshot)
        except Exception as refused:
            await self._keep_refused_reply(reply, usage, cost, refused)
            raise

    async def _keep_refused_reply(
        self, reply: NewMessage, usage: TokenUsage, cost: float, refused: Exception
    ) -> None:
        """Store a reply the store refused as a turn as a failed message, text and usage."""
        reason = f"{type(refused).__name__}: {refused}"
        failed = dataclasses.replace(
            reply,
            status=MessageStatus.FAILED,
            error=f"unknown: the reply could not be stored as a turn: {reason}"[:4000],
        )
        try:
            outcome = await self._core.live.append((failed,), usage=usage, cost=cost)
        except Exception as again:
            raise MnesisStoreError(
                f"the model's reply was not stored: {describe_reply(reply)}; "
                f"as a turn: {reason}; as a failed message: {type(again).__name__}: {again}"
            ) from refused
        self._core.totals.follow(outcome)
        self._publish_created((failed,))
        refused.add_note(f"the model's reply was kept as failed message {reply.id}")

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
            turn_index=0,  # the store numbers the turn when it is appended
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

    async def fill_tool_results(self, results: tuple[ToolResult, ...]) -> None:
        """Store tool calls' results (all or none); ``part.updated`` for each call and
        ``message.updated`` for each message whose token count grew with them."""
        core = self._core
        outcome = await core.live.fill_tool_results(results)
        for result in results:
            core.bus.publish(
                MnesisEvent.PART_UPDATED,
                {
                    "session_id": core.id,
                    "tool_call_id": result.tool_call_id,
                    "status": "error" if result.error is not None else "completed",
                },
            )
        for message_id in outcome.message_ids:
            core.bus.publish(
                MnesisEvent.MESSAGE_UPDATED, {"session_id": core.id, "message_id": message_id}
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
            for index, new in enumerate(message.parts):
                core.bus.publish(
                    MnesisEvent.PART_CREATED,
                    {
                        "session_id": core.id,
                        "message_id": message.id,
                        "index": index,
                        "part_type": new.part.type,
                    },
                )


def describe_reply(reply: NewMessage) -> str:
    """A reply in one line: its id, and how much text and how many tool calls it held."""
    text = sum(len(p.part.text) for p in reply.parts if isinstance(p.part, TextPart))
    calls = sum(isinstance(p.part, ToolPart) for p in reply.parts)
    return f"message {reply.id} ({text:,} characters of text, {calls} tool calls)"
