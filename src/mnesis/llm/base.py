"""The provider protocol: one required method, ``stream``.

A provider turns an :class:`LLMRequest` (chat messages in the OpenAI/litellm
format) into a stream of :class:`StreamChunk` as the model produces them.
Anything else — collecting a whole reply, retries, assembling tool-call
fragments — is built on top, once, in this layer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mnesis.models.message import TokenUsage, ToolPart, ToolStatus


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One chat completion request."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with one ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """What a provider yields: text, tool-call fragments, usage, or the finish reason."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    usage: TokenUsage | None = None
    finish_reason: str | None = None
    cost: float | None = None  # USD, when the provider knows it better than the price table


@runtime_checkable
class LLMProvider(Protocol):
    """A model backend."""

    def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        """Stream the reply to ``request`` chunk by chunk, as it is generated."""
        ...


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


_FINISH_ALIASES = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "max_tokens": "length",
}


@dataclass(slots=True)
class ResponseAccumulator:
    """Collects a streamed reply: text, tool calls assembled from fragments, usage."""

    text_chunks: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    finish_reason: str | None = None
    cost: float | None = None
    _calls: dict[int, _PendingCall] = field(default_factory=dict)

    def add(self, chunk: StreamChunk) -> None:
        if chunk.text:
            self.text_chunks.append(chunk.text)
        for delta in chunk.tool_calls:
            call = self._calls.setdefault(delta.index, _PendingCall())
            if delta.id:
                call.id = delta.id
            if delta.name and not call.name:
                call.name = delta.name
            call.arguments += delta.arguments
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.cost is not None:
            self.cost = chunk.cost
        if chunk.finish_reason:
            self.finish_reason = _FINISH_ALIASES.get(chunk.finish_reason, chunk.finish_reason)

    @property
    def text(self) -> str:
        return "".join(self.text_chunks)

    @property
    def has_tool_calls(self) -> bool:
        return any(call.name for call in self._calls.values())

    def tool_parts(self, id_prefix: str) -> list[ToolPart]:
        """The assembled tool calls; arguments that are not a JSON object are kept
        under ``"_raw"`` so nothing the model said is lost."""
        parts = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                continue
            try:
                arguments = json.loads(call.arguments) if call.arguments.strip() else {}
            except ValueError:
                arguments = {"_raw": call.arguments}
            if not isinstance(arguments, dict):
                arguments = {"_raw": call.arguments}
            parts.append(
                ToolPart(
                    tool_name=call.name,
                    tool_call_id=call.id or f"{id_prefix}_{index}",
                    input=arguments,
                    status=ToolStatus.PENDING,
                )
            )
        return parts


async def complete(provider: LLMProvider, request: LLMRequest) -> ResponseAccumulator:
    """Run ``request`` to the end and return the collected reply."""
    acc = ResponseAccumulator()
    async for chunk in provider.stream(request):
        acc.add(chunk)
    return acc
