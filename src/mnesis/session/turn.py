"""A turn: the user's message in, model calls and tool runs until the model answers.

A turn is a chain of small steps, each returning the step that comes next
(cf. pydantic-ai's ``UserPromptNode`` → ``ModelRequestNode`` → ``CallToolsNode``)::

    catch up → append user message → make room → call model ─┬→ run tools → make room → …
                                                              ├→ refuse repeated calls → finish
                                                              └→ finish

"Make room" waits for compaction when the context is past the usable budget;
"finish" starts a background pass when it is past the soft threshold. A model
call streams the reply live to the caller, retrying transient errors (each
retry published as ``llm.retry`` first), saves its text as a draft while a long
stream runs (so a dead process loses none of it), and persists the reply with
its usage and a turn snapshot in one append. An empty reply that finished is a
reply (``llm.empty_reply`` warns of it). A failed call is persisted as a failed
message, never counted, and raised. A turn recorded by the caller's own SDK
(:meth:`TurnRunner.record`) takes the same path minus the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mnesis.context import needs_cache_breakpoints
from mnesis.errors import ContextLimitError, LLMError
from mnesis.events.bus import MnesisEvent
from mnesis.llm.base import LLMRequest, ResponseAccumulator
from mnesis.llm.retry import as_llm_error, stream_with_retry
from mnesis.models.ids import new_id
from mnesis.models.message import (
    FinishReason,
    MessagePart,
    MessageStatus,
    TextPart,
    TokenUsage,
    ToolPart,
)
from mnesis.models.results import CompactionResult, RecordResult, TurnResult
from mnesis.session.compaction import CompactionScheduler
from mnesis.session.core import SessionCore
from mnesis.session.drafts import DraftKeeper
from mnesis.session.inputs import check_pin_budget
from mnesis.session.tools import ToolHandler, ToolLoop
from mnesis.session.writer import SessionWriter
from mnesis.tokens import MESSAGE_OVERHEAD

OnPart = Callable[[MessagePart], Awaitable[None] | None]
Forward = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What a caller asked of one ``send()``, already validated."""

    parts: list[MessagePart]
    tools: list[dict[str, Any]] | None
    handlers: dict[str, ToolHandler]
    max_steps: int
    tool_choice: str | dict[str, Any] | None = None
    on_part: OnPart | None = None
    system_prompt: str | None = None
    pin: bool = False


@dataclass(slots=True)
class ModelStep:
    """One model call of a turn, as persisted."""

    message_id: str
    text: str
    finish_reason: str
    usage: TokenUsage
    cost: float
    tool_calls: list[ToolPart]
    doom_loop: bool = False


class Step(Protocol):
    """One step of a turn; it returns the next, or None when the turn is over."""

    def __call__(self) -> Awaitable[Step | None]: ...


@dataclass(slots=True)
class Turn:
    """One ``send()``: the steps taken so far and the chain that takes the next."""

    runner: TurnRunner
    request: TurnRequest
    steps: list[ModelStep] = field(default_factory=list)
    user_message_id: str = ""
    hard_result: CompactionResult | None = None
    compaction_started: bool = False
    callback_error: Exception | None = None

    async def run(self) -> None:
        """Take steps until one says the turn is over."""
        step: Step | None = self._catch_up
        while step is not None:
            step = await step()

    def result(self) -> TurnResult:
        """What ``send()`` returns; raises the ``on_part`` callback's error, if any."""
        if self.callback_error is not None:
            raise self.callback_error
        last = self.steps[-1]
        usage = self.steps[0].usage
        for step in self.steps[1:]:
            usage = usage + step.usage
        return TurnResult(
            message_id=last.message_id,
            text=last.text,
            finish_reason=last.finish_reason,
            tokens=usage,
            cost=sum(s.cost for s in self.steps),
            doom_loop_detected=any(s.doom_loop for s in self.steps),
            tool_calls=last.tool_calls,
            user_message_id=self.user_message_id,
            steps=len(self.steps),
            compaction_triggered=self.compaction_started or self.hard_result is not None,
            compaction_result=self.hard_result,
        )

    # -- the steps ----------------------------------------------------------------

    async def _catch_up(self) -> Step:
        """Pick up what a background compaction pass changed."""
        await self.runner.core.live.reload_if_expected()
        return self._append_user_message

    async def _append_user_message(self) -> Step:
        core, request = self.runner.core, self.request
        if request.pin:
            adding = sum(core.counter.part_tokens(p)[0] for p in request.parts)
            check_pin_budget(core.live.pinned_tokens(), adding, core.usable_tokens)
        self.user_message_id = await self.runner.writer.append_user(request.parts)
        if request.pin:
            await core.live.pin(self.user_message_id, usable_tokens=core.usable_tokens)
        return self._make_room

    async def _make_room(self) -> Step:
        """Past the usable budget, wait for compaction before calling the model
        (``ContextLimitError`` if no room can be made: nothing is sent)."""
        made_room = await self.runner.compaction.make_room_for_request()
        self.hard_result = made_room or self.hard_result
        return self._call_model

    async def _call_model(self) -> Step:
        request = self.request
        step = await self.runner.call_model(
            tools=request.tools,
            tool_choice=request.tool_choice if not self.steps else None,
            system_prompt=request.system_prompt,
            forward=self._forward if request.on_part is not None else None,
            hard_result=self.hard_result,
        )
        self.steps.append(step)
        if step.doom_loop:
            return self._refuse_repeated_calls if request.handlers else self._finish
        return self._run_tools if self._can_run_tools(step) else self._finish

    def _can_run_tools(self, step: ModelStep) -> bool:
        """A tool loop goes on while every call has a handler and steps remain."""
        handlers = self.request.handlers
        if not step.tool_calls or not handlers or len(self.steps) >= self.request.max_steps:
            return False
        return all(c.tool_name in handlers for c in step.tool_calls)

    async def _run_tools(self) -> Step:
        await self.runner.tools.run_calls(self.steps[-1].tool_calls, self.request.handlers)
        return self._make_room

    async def _refuse_repeated_calls(self) -> Step:
        await self.runner.tools.refuse_repeated_calls(
            self.steps[-1].tool_calls, self.request.handlers
        )
        return self._finish

    async def _finish(self) -> None:
        """Past the soft threshold, start a background compaction pass."""
        self.compaction_started = self.runner.compaction.start_if_past_soft_limit()

    async def _forward(self, text: str) -> None:
        """Hand a streamed chunk to ``on_part``; its failure is raised after the turn."""
        on_part = self.request.on_part
        if on_part is None or self.callback_error is not None:
            return
        try:
            outcome = on_part(TextPart(text=text))
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:  # the consumer failed; the turn goes on
            self.callback_error = exc


class TurnRunner:
    """Runs one session's turns: model calls, their persistence, recorded turns."""

    def __init__(
        self,
        core: SessionCore,
        writer: SessionWriter,
        tools: ToolLoop,
        compaction: CompactionScheduler,
    ) -> None:
        self.core = core
        self.writer = writer
        self.tools = tools
        self.compaction = compaction

    async def run(self, request: TurnRequest) -> Turn:
        """Run a turn to its end; the caller holds the turn lock."""
        turn = Turn(self, request)
        await turn.run()
        return turn

    async def call_model(
        self,
        *,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | dict[str, Any] | None,
        system_prompt: str | None,
        forward: Forward | None,
        hard_result: CompactionResult | None,
    ) -> ModelStep:
        """One model call on the live context, streamed to ``forward``, then persisted."""
        core = self.core
        messages = core.live.window.messages(
            core.prompt(system_prompt), cache_breakpoints=needs_cache_breakpoints(core.model)
        )
        request = LLMRequest(
            model=core.model,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice if tools else None,
            max_tokens=core.limits.max_output_tokens,
        )
        reply = ResponseAccumulator()
        message_id = new_id("msg")
        draft = DraftKeeper(core.store, core.id, message_id)
        try:
            # A stream cut off with nothing at all (no text, no finish reason) is
            # retried there as transient; an empty reply that finished is a reply.
            async for chunk in stream_with_retry(
                core.provider, request, core.config.session.retry, self._publish_retry
            ):
                reply.add(chunk)
                if chunk.text:
                    draft.text_arrived(reply)
                    if forward is not None:
                        await forward(chunk.text)
        except BaseException as exc:
            error = (
                exc
                if isinstance(exc, asyncio.CancelledError)
                else as_llm_error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            )
            await asyncio.shield(self._persist_failure(message_id, reply, error))
            await asyncio.shield(draft.discard())
            if isinstance(exc, LLMError | asyncio.CancelledError) or not isinstance(exc, Exception):
                raise
            raise error from exc
        if forward is not None:
            await asyncio.sleep(0)  # the consumer gets the last delta before the reply is stored
        step = await self._persist_reply(message_id, reply, hard_result)
        await draft.discard()
        if not step.text and not step.tool_calls:
            self._publish_empty_reply(step)
        return step

    async def _persist_failure(
        self, message_id: str, reply: ResponseAccumulator, error: BaseException
    ) -> None:
        partial: list[MessagePart] = [TextPart(text=reply.text)] if reply.text else []
        message = self.core.counter.counted_message(
            message_id,
            "assistant",
            partial,
            time.time(),
            status=MessageStatus.FAILED,
            finish_reason=FinishReason.ERROR,
            error=failure_text(error)[:4000],
        )
        await self.writer.append((message,))

    async def _persist_reply(
        self, message_id: str, reply: ResponseAccumulator, hard_result: CompactionResult | None
    ) -> ModelStep:
        core = self.core
        calls = reply.tool_parts(id_prefix=f"call_{message_id}")
        text = reply.text
        parts: list[MessagePart] = [TextPart(text=text)] if text or not calls else []
        parts.extend(calls)
        finish = FinishReason.TOOL_CALLS if calls else (reply.finish_reason or FinishReason.STOP)
        message = core.counter.counted_message(
            message_id, "assistant", parts, time.time(), finish_reason=str(finish)
        )
        usage = reply.usage or TokenUsage(input=core.context_tokens(), output=message.token_count)
        # Cost comes from the provider's own counts only; an estimate is not priced.
        if reply.cost is not None:
            cost = reply.cost
        else:
            cost = core.limits.cost(usage) if reply.usage is not None else 0.0
        message = dataclasses.replace(message, tokens=usage, cost=cost)
        snapshot = self.writer.snapshot(
            extra_tokens=message.token_count + MESSAGE_OVERHEAD, hard_result=hard_result
        )
        await self.writer.append_reply(message, usage, cost, snapshot)
        doom = self.tools.detect_doom_loop(message_id, calls)
        return ModelStep(message_id, text, str(finish), usage, cost, calls, doom)

    def _publish_empty_reply(self, step: ModelStep) -> None:
        core = self.core
        core.bus.publish(
            MnesisEvent.LLM_EMPTY_REPLY,
            {
                "session_id": core.id,
                "model": core.model,
                "message_id": step.message_id,
                "finish_reason": step.finish_reason,
            },
        )

    def _publish_retry(self, attempt: int, delay: float, error: LLMError) -> None:
        core = self.core
        core.bus.publish(
            MnesisEvent.LLM_RETRY,
            {
                "session_id": core.id,
                "model": core.model,
                "attempt": attempt,
                "max_retries": core.config.session.retry.max_retries,
                "delay_seconds": delay,
                "error": f"{type(error).__name__}: {error}"[:500],
            },
        )

    async def record(
        self,
        user_parts: list[MessagePart],
        assistant_parts: list[MessagePart],
        *,
        tokens: TokenUsage | None,
        finish_reason: str,
    ) -> RecordResult:
        """A turn the caller's own SDK produced; the caller holds the turn lock."""
        await self.core.live.reload_if_expected()
        hard = await self.compaction.wait_until_under_hard_limit()
        user, assistant, usage = await self.writer.record_turn(
            user_parts,
            assistant_parts,
            tokens=tokens,
            finish_reason=finish_reason,
            hard_result=hard,
        )
        calls = [p for p in assistant_parts if isinstance(p, ToolPart)]
        doom = self.tools.detect_doom_loop(assistant.id, calls)
        started = self.compaction.start_if_past_soft_limit()
        return RecordResult(
            user_message_id=user.id,
            assistant_message_id=assistant.id,
            tokens=usage,
            compaction_triggered=started or hard is not None,
            doom_loop_detected=doom,
        )

    async def record_user(self, parts: list[MessagePart]) -> str:
        """A user message alone, which the caller's SDK answers step by step
        (:meth:`record_reply`); the caller holds the turn lock."""
        await self.core.live.reload_if_expected()
        await self.compaction.wait_until_under_hard_limit()
        return await self.writer.append_user(parts)

    async def record_reply(
        self, parts: list[MessagePart], *, tokens: TokenUsage | None, finish_reason: str
    ) -> RecordResult:
        """One reply of the caller's model, after the user message it answers was
        stored; a step of the turn as :meth:`record` stores a whole one."""
        core = self.core
        await core.live.reload_if_expected()
        hard = await self.compaction.wait_until_under_hard_limit()
        message = core.counter.counted_message(
            new_id("msg"), "assistant", parts, time.time(), finish_reason=finish_reason
        )
        usage = tokens or TokenUsage(input=core.context_tokens(), output=message.token_count)
        cost = core.limits.cost(tokens) if tokens is not None else 0.0
        message = dataclasses.replace(message, tokens=usage, cost=cost)
        snapshot = self.writer.snapshot(
            extra_tokens=message.token_count + MESSAGE_OVERHEAD, hard_result=hard
        )
        await self.writer.append_turn((message,), usage, cost, snapshot)
        calls = [p for p in parts if isinstance(p, ToolPart)]
        doom = self.tools.detect_doom_loop(message.id, calls)
        started = self.compaction.start_if_past_soft_limit()
        return RecordResult(
            user_message_id="",
            assistant_message_id=message.id,
            tokens=usage,
            compaction_triggered=started or hard is not None,
            doom_loop_detected=doom,
        )


_AUTH_ERRORS = frozenset(
    {"AuthenticationError", "CallerCredentialAuthenticationError", "PermissionDeniedError"}
)


def failure_text(error: BaseException) -> str:
    """A failed reply's stored error: ``"code: Type: reason"``, the code one of
    :class:`~mnesis.models.message.MessageError`'s."""
    provider_error = getattr(error, "provider_error", None)
    if isinstance(error, asyncio.CancelledError):
        return "aborted: cancelled"
    if isinstance(error, ContextLimitError) or provider_error == "ContextWindowExceededError":
        code = "context_overflow"
    elif provider_error in _AUTH_ERRORS:
        code = "auth"
    elif isinstance(error, LLMError):
        code = "api_error"
    else:
        code = "unknown"
    return f"{code}: {type(error).__name__}: {error}"
