"""A deterministic model for tests, examples and key-less demos.

:class:`MockProvider` streams whatever a handler function returns, in several
chunks, with usage, exactly like a real provider does — so code under test runs
the same path it runs in production. Without a handler it uses
:func:`default_handler`, the model behind ``MNESIS_MOCK_LLM=1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mnesis.llm.base import LLMRequest, StreamChunk, ToolCallDelta
from mnesis.models.message import TokenUsage


@dataclass(frozen=True, slots=True)
class MockToolCall:
    """A tool call the mock model makes."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class MockReply:
    """What a mock handler returns: text, tool calls, and optionally exact usage."""

    text: str = ""
    tool_calls: tuple[MockToolCall, ...] = ()
    usage: TokenUsage | None = None
    finish_reason: str | None = None


MockResult = str | MockReply
MockHandler = Callable[[LLMRequest], MockResult | Awaitable[MockResult]]

_WORDS = (
    "context memory summary window token turn history durable log engine budget "
    "recall detail answer reason plan step result note fact record session"
).split()


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _placeholder(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "mock"


# The line LLMMap puts before the output schema; the default mock answers it with
# a schema-valid JSON object, so operators work in mock mode too.
SCHEMA_MARKER = "Respond with only a JSON object that matches this JSON Schema:"


def sample_from_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (reasonable) JSON Schema."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if defs is None:
        found: dict[str, Any] = schema.get("$defs") or schema.get("definitions") or {}
        defs = found
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return sample_from_schema(target, defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return sample_from_schema(options[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: sample_from_schema(sub, defs, depth + 1) for key, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [sample_from_schema(schema.get("items", {}), defs, depth + 1)] * count
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return float(schema.get("minimum", 0.5)) if "minimum" in schema else 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    length = int(schema.get("minLength", 4))
    return "mock" if length <= 4 else "m" * length


def default_handler(request: LLMRequest) -> MockReply:
    """A deterministic reply that depends only on the request.

    - After tool results, it reports them.
    - When the last user message names an offered tool, it calls that tool with
      placeholder values for the required arguments.
    - Otherwise it answers with a sentence derived from the user's words.
    """
    last = request.messages[-1] if request.messages else {"role": "user", "content": ""}
    if last.get("role") == "tool":
        outputs = [
            _message_text(m)[:80] for m in reversed(request.messages) if m.get("role") == "tool"
        ]
        return MockReply(text="Tool results received: " + " | ".join(reversed(outputs)))
    text = _message_text(last)
    if SCHEMA_MARKER in text:
        try:
            schema = json.loads(text.split(SCHEMA_MARKER, 1)[1].strip())
        except ValueError:
            schema = {}
        return MockReply(text=json.dumps(sample_from_schema(schema)))
    for tool in request.tools or []:
        fn = tool.get("function", tool)
        name = str(fn.get("name", ""))
        if name and re.search(rf"\b{re.escape(name)}\b", text):
            params = fn.get("parameters") or {}
            props = params.get("properties") or {}
            args = {key: _placeholder(props.get(key, {})) for key in params.get("required", [])}
            return MockReply(tool_calls=(MockToolCall(name=name, arguments=args),))
    digest = hashlib.sha256(text.encode()).digest()
    filler = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:12])
    words = text.split()
    echo = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    return MockReply(text=f'Mock answer to "{echo}": {filler}.')


def _chunks(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


class MockProvider:
    """A provider whose replies come from ``handler`` (sync or async).

    Args:
        handler: Maps a request to a reply string or :class:`MockReply`.
        chunks: How many text chunks each reply is streamed in.
        chunk_delay: Seconds to wait between chunks (to observe live streaming).
    """

    def __init__(
        self,
        handler: MockHandler | None = None,
        *,
        chunks: int = 4,
        chunk_delay: float = 0.0,
    ) -> None:
        self.handler: MockHandler = handler or default_handler
        self.chunks = max(1, chunks)
        self.chunk_delay = chunk_delay
        self.requests: deque[LLMRequest] = deque(maxlen=100)  # the most recent requests
        self.calls = 0

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        self.requests.append(request)
        self.calls += 1
        outcome = self.handler(request)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        reply = MockReply(text=outcome) if isinstance(outcome, str) else outcome
        for i, piece in enumerate(_chunks(reply.text, self.chunks)):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield StreamChunk(text=piece)
        for index, call in enumerate(reply.tool_calls):
            call_id = call.id or f"call_mock_{self.calls}_{index}"
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            first = ToolCallDelta(index, call_id, call.name, arguments[:half])
            yield StreamChunk(tool_calls=(first,))
            yield StreamChunk(tool_calls=(ToolCallDelta(index, arguments=arguments[half:]),))
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        usage = reply.usage or _estimate_usage(request, reply)
        # A mock costs nothing, whatever model name it stands in for.
        yield StreamChunk(usage=usage, finish_reason=finish, cost=0.0)


def _estimate_usage(request: LLMRequest, reply: MockReply) -> TokenUsage:
    # A cheap length-based count: the mock must not re-tokenise the history per turn.
    chars = sum(len(_message_text(m)) for m in request.messages)
    prompt = chars // 4 + 4 * len(request.messages)
    completion = (
        len(reply.text) // 4
        + 1
        + sum(len(json.dumps(c.arguments)) // 4 + 8 for c in reply.tool_calls)
    )
    return TokenUsage(input=prompt, output=completion, total=prompt + completion)
