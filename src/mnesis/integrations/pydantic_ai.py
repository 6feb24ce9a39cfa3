"""mnesis as a pydantic-ai history processor: lossless, compacting memory in one line.

``Agent(model, history_processors=[MnesisHistory("user-42", model=...)])``:
before each model request pydantic-ai hands the processor the run's message
list; the processor stores the messages it has not seen (losslessly, in a
mnesis session) and returns the compacted history in pydantic-ai's own
``ModelMessage`` types, which pydantic-ai then sends and keeps.

What is new is told by a mark in each message's ``metadata`` (a field
pydantic-ai never sends to the model): messages the processor built from the
store carry ``{"mnesis": "context"}``, messages it stored carry ``{"mnesis":
"stored"}``; everything unmarked is stored once, whether it arrives in the run
or through ``message_history=`` (even after a round trip through JSON).

How messages become the log: user prompts (text) become user messages; a
response's text and tool calls become one reply whose calls hold their tool
returns (``ToolReturnPart``, or a ``RetryPromptPart`` for a call as its
error), so compaction never splits a call from its result. Any other part
(images, thinking, native tools, a return whose call is unknown) is stored
verbatim as pydantic-ai's own JSON and comes back as it was. System prompt
parts are not stored: the agent sends them every run; the latest is put back
at the head of the history.

The run's final response reaches no processor (no model request follows it):
pass ``message_history=result.all_messages()`` to the next run, or call
:meth:`MnesisHistory.remember` with ``result.new_messages()``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mnesis.context.window import NO_RESULT
from mnesis.errors import ConfigError, InvalidInputError, ToolResultError
from mnesis.integrations._lazy import LazySession
from mnesis.integrations._optional import install_hint
from mnesis.models.config import MnesisConfig
from mnesis.models.message import MessagePart, TextPart, TokenUsage, ToolPart
from mnesis.session import MnesisSession

try:
    from pydantic_ai import messages as _messages
    from pydantic_ai.capabilities import ProcessHistory
    from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import RunContext
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the package
    raise ConfigError(
        f"the pydantic-ai integration needs pydantic-ai ({exc}): {install_hint('pydantic-ai')}"
    ) from exc

MARK = "mnesis"
"""The ``metadata`` key that says a message is the processor's (built or stored)."""
VERBATIM_MARKER = "[pydantic-ai message]\n"
"""Starts the text of a message stored verbatim; pydantic-ai's JSON of it follows."""


class MnesisHistory(LazySession):
    """A pydantic-ai history processor backed by a mnesis session.

    Construct it synchronously; the mnesis session is created, or loaded when
    ``session_id`` exists, on first use. Close it with ``await close()`` or
    ``async with``.

    Args:
        session_id: The conversation's id; a stored one is resumed. Default: new.
        model: The model mnesis counts tokens for and compacts with (litellm string).
        db_path: Database file or URL (default ``~/.mnesis/sessions.db`` or ``MNESIS_DB_URL``).
        config: mnesis configuration (context limits, compaction thresholds, ...).
        system_prompt: Stored with a new session; the agent's own prompt is what is sent.
        session: Use an open :class:`MnesisSession` instead (not closed by :meth:`close`).
        **options: Passed to ``MnesisSession.create``/``load`` (``provider=``, ``event_bus=``).
    """

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
        super().__init__(
            session_id,
            model=model,
            db_path=db_path,
            config=config,
            system_prompt=system_prompt,
            session=session,
            **options,
        )
        self._calls = asyncio.Lock()
        self._system_parts: list[Any] = []

    # -- the processor ---------------------------------------------------------------

    async def __call__(self, messages: list[ModelMessage]) -> list[ModelMessage]:
        """Store what is new in ``messages``; return the compacted history followed
        by the new messages themselves (the request about to be sent last)."""
        async with self._calls:
            session = await self.mnesis_session()
            context = decode_context(await session.context_for_next_turn())
            new = await self._store_new(session, messages)
        history = [*context, *new]
        if self._system_parts and not any(_has_system_part(m) for m in history):
            head = _messages.ModelRequest(parts=list(self._system_parts))
            history.insert(0, _marked(head, "context"))
        return history

    def capability(self) -> MnesisMemory:
        """The processor as a pydantic-ai capability that also stores each run's
        final response: ``Agent(model, capabilities=[history.capability()])``."""
        return MnesisMemory(processor=self)

    async def remember(self, messages: Sequence[ModelMessage]) -> None:
        """Store the messages not stored yet (a run's final response, which no
        processor sees): ``await history.remember(result.new_messages())``."""
        async with self._calls:
            await self._store_new(await self.mnesis_session(), list(messages))

    async def _store_new(
        self, session: MnesisSession, messages: list[ModelMessage]
    ) -> list[ModelMessage]:
        """Store the unmarked messages, in order, and mark them; returns them."""
        if not isinstance(messages, list):
            raise InvalidInputError("a history processor takes a list of ModelMessage")
        new = [m for m in messages if not _mark_of(m)]
        for message in new:
            if isinstance(message, _messages.ModelRequest):
                await self._store_request(session, message)
            elif isinstance(message, _messages.ModelResponse):
                await _store_response(session, message)
            else:
                raise InvalidInputError(f"not a pydantic-ai ModelMessage: {type(message).__name__}")
            _marked(message, "stored")
        return new

    async def _store_request(self, session: MnesisSession, request: ModelRequest) -> None:
        system = [p for p in request.parts if isinstance(p, _messages.SystemPromptPart)]
        if system:
            self._system_parts = system
        for part in request.parts:
            if isinstance(part, _messages.SystemPromptPart):
                continue
            if isinstance(part, _messages.UserPromptPart) and isinstance(part.content, str):
                if part.content and not part.content.startswith(VERBATIM_MARKER):
                    await session.record_user(part.content)
                    continue
            elif await _store_tool_result(session, part):
                continue
            await session.record_user(_verbatim(_messages.ModelRequest(parts=[part])))


@dataclass
class MnesisMemory(ProcessHistory[Any]):
    """:class:`MnesisHistory` as a capability: the history before each model
    request, and the run's new messages stored once it ends (its final response
    included, which no history processor sees)."""

    processor: MnesisHistory

    async def after_run(
        self, ctx: RunContext[Any], *, result: AgentRunResult[Any]
    ) -> AgentRunResult[Any]:
        await self.processor.remember(result.new_messages())
        return result


async def _store_tool_result(session: MnesisSession, part: Any) -> bool:
    """A text tool return into its call's result slot (an unsuccessful outcome,
    like a retry, as the call's error; it comes back as the text ``Error: ...``),
    or a retry prompt for a call as its error; False when it is neither or no
    pending call has its id."""
    if type(part) is _messages.ToolReturnPart:
        if not isinstance(part.content, str):
            return False
        failed = getattr(part, "outcome", "success") != "success"  # retried, failed, denied
        output, error = (None, part.content) if failed else (part.content, None)
    elif isinstance(part, _messages.RetryPromptPart) and part.tool_name:
        output, error = None, part.model_response()
    else:
        return False
    try:
        await session.record_tool_result(part.tool_call_id, output, error=error)
    except ToolResultError:
        return False
    return True


async def _store_response(session: MnesisSession, response: ModelResponse) -> None:
    parts = _reply_parts(response)
    usage = response.usage
    tokens = TokenUsage(
        input=usage.input_tokens,
        output=usage.output_tokens,
        cache_read=usage.cache_read_tokens,
        cache_write=usage.cache_write_tokens,
    )
    given = tokens if tokens.effective_total() else None
    if parts is None:
        await session.record_reply(_verbatim(response), tokens=given)
        return
    calls = any(isinstance(p, ToolPart) for p in parts)
    await session.record_reply(parts, tokens=given, finish_reason="tool_calls" if calls else "stop")


def _reply_parts(response: ModelResponse) -> list[MessagePart] | None:
    """One text then tool calls (or either alone), as mnesis parts; None when the
    response holds anything else or another order (stored verbatim then).

    Provider bookkeeping on the parts (``id``, ``provider_details``) is not kept.
    """
    parts: list[MessagePart] = []
    given: list[Any] = list(response.parts)  # checked by exact type below
    for index, part in enumerate(given):
        if type(part) is _messages.TextPart and index == 0 and part.content:
            if part.content.startswith(VERBATIM_MARKER) or part.citations:
                return None
            parts.append(TextPart(text=part.content))
        elif type(part) is _messages.ToolCallPart and part.tool_name:
            try:
                args = part.args_as_dict(raise_if_invalid=True)
            except ValueError:
                return None
            call = ToolPart(tool_name=part.tool_name, tool_call_id=part.tool_call_id, input=args)
            parts.append(call)
        else:
            return None
    return parts or None


# -- the context → messages -------------------------------------------------------------


def decode_context(chat: list[dict[str, Any]]) -> list[ModelMessage]:
    """The pydantic-ai messages a mnesis context stands for, marked ``context``."""
    out: list[ModelMessage] = []
    returns: list[Any] = []
    names: dict[str, str] = {}

    def flush() -> None:
        if returns:
            out.append(_marked(_messages.ModelRequest(parts=list(returns)), "context"))
            returns.clear()

    for message in chat:
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            if content != NO_RESULT:  # an answer came verbatim (or none yet)
                call_id = str(message["tool_call_id"])
                returns.append(
                    _messages.ToolReturnPart(
                        tool_name=names.get(call_id, ""), content=content, tool_call_id=call_id
                    )
                )
            continue
        flush()
        text = content if isinstance(content, str) else ""
        if text.startswith(VERBATIM_MARKER):
            restored = _restore(text[len(VERBATIM_MARKER) :])
            if restored is not None:
                out.append(_marked(restored, "context"))
                continue
        calls = message.get("tool_calls") or []
        if role == "assistant":
            parts: list[Any] = [_messages.TextPart(content=text)] if text else []
            for call in calls:
                names[call["id"]] = call["function"]["name"]
                parts.append(
                    _messages.ToolCallPart(
                        tool_name=call["function"]["name"],
                        args=call["function"]["arguments"],
                        tool_call_id=call["id"],
                    )
                )
            out.append(_marked(_messages.ModelResponse(parts=parts), "context"))
        elif text:
            out.append(
                _marked(_messages.ModelRequest(parts=[_messages.UserPromptPart(text)]), "context")
            )
    flush()
    return out


# -- helpers ------------------------------------------------------------------------------


def _mark_of(message: Any) -> str | None:
    metadata = getattr(message, "metadata", None)
    return metadata.get(MARK) if isinstance(metadata, dict) else None


def _marked(message: Any, mark: str) -> Any:
    message.metadata = {**(message.metadata or {}), MARK: mark}
    return message


def _has_system_part(message: Any) -> bool:
    return isinstance(message, _messages.ModelRequest) and any(
        isinstance(p, _messages.SystemPromptPart) for p in message.parts
    )


def _verbatim(message: Any) -> str:
    data: bytes = _messages.ModelMessagesTypeAdapter.dump_json([message])
    return VERBATIM_MARKER + data.decode()


def _restore(data: str) -> Any:
    try:
        restored = _messages.ModelMessagesTypeAdapter.validate_json(data)
    except ValueError:
        return None
    return restored[0] if len(restored) == 1 else None


__all__ = ["MARK", "MnesisHistory", "decode_context"]
