"""What callers hand a session, coerced to parts and checked before anything is written.

Every usage mistake is an :class:`~mnesis.errors.InvalidInputError` raised
here, at the door, so a turn that starts never fails half-way for a bad
argument.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mnesis.errors import InvalidInputError
from mnesis.files import LargeFileHandler
from mnesis.models.message import (
    FileRefPart,
    MessagePart,
    TextPart,
    TokenUsage,
    ToolPart,
    ToolStatus,
)
from mnesis.session.tokens import TokenCounter
from mnesis.store import ToolResult

_PARTS: TypeAdapter[list[MessagePart]] = TypeAdapter(list[MessagePart])


def check_new_session(model: object, system_prompt: object, agent: object) -> None:
    """The arguments of ``MnesisSession.create`` that name the session."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model must be a non-empty string such as 'openai/gpt-4o'")
    if not isinstance(system_prompt, str):
        raise InvalidInputError("system_prompt must be a string")
    if not isinstance(agent, str) or not agent:
        raise InvalidInputError("agent must be a non-empty string")


def check_session_id(session_id: object) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise InvalidInputError("session_id must be a non-empty string")


def check_tokens(tokens: object) -> None:
    if tokens is not None and not isinstance(tokens, TokenUsage):
        raise InvalidInputError("tokens must be a TokenUsage or None")


def tool_steps_allowed(max_tool_steps: int | None, default: int) -> int:
    """Model calls one tool loop may make."""
    steps = max_tool_steps or default
    if steps < 1:
        raise InvalidInputError("max_tool_steps must be >= 1")
    return steps


def check_pin_budget(pinned: int, adding: int, usable: int) -> None:
    """Pinned tokens may take at most half of the usable context."""
    limit = usable // 2
    if pinned + adding > limit:
        raise InvalidInputError(
            f"pinning would keep {pinned + adding} tokens verbatim, more than half of the "
            f"usable context ({limit} of {usable})"
        )


def coerce_parts(value: str | list[MessagePart], what: str) -> list[MessagePart]:
    """A string as one text part; a list validated as parts (dicts allowed)."""
    if isinstance(value, str):
        return [TextPart(text=value)]
    if not isinstance(value, list):
        raise InvalidInputError(
            f"{what} must be a string or a list of parts, not {type(value).__name__}"
        )
    try:
        return _PARTS.validate_python(
            [
                p.model_dump() if isinstance(p, TextPart | ToolPart | FileRefPart) else p
                for p in value
            ]
        )
    except ValidationError as exc:
        raise InvalidInputError(f"{what} has an invalid part: {exc}") from exc


def user_parts(message: str | list[MessagePart]) -> list[MessagePart]:
    """A user message's parts: not empty, no tool calls."""
    parts = coerce_parts(message, "message")
    if any(isinstance(p, ToolPart) for p in parts):
        raise InvalidInputError("a user message cannot contain tool calls (ToolPart)")
    if not parts or all(isinstance(p, TextPart) and not p.text.strip() for p in parts):
        raise InvalidInputError("message must not be empty")
    return parts


def assistant_parts(message: str | list[MessagePart]) -> list[MessagePart]:
    """A recorded reply's parts: unique call ids, a call with its result marked finished."""
    parts = coerce_parts(message, "assistant_response")
    seen: set[str] = set()
    out: list[MessagePart] = []
    for part in parts:
        if isinstance(part, ToolPart):
            if part.tool_call_id in seen:
                raise InvalidInputError(f"duplicate tool_call_id {part.tool_call_id!r}")
            seen.add(part.tool_call_id)
            if part.status == ToolStatus.PENDING and part.has_result:
                # A call recorded with its result is finished, whatever status it says.
                done = ToolStatus.COMPLETED if part.output is not None else ToolStatus.ERROR
                part = part.model_copy(update={"status": done})
        out.append(part)
    return out


def validated_tools(
    tools: list[Any] | None, handlers: dict[str, Any] | None
) -> list[dict[str, Any]] | None:
    """Tool definitions in the OpenAI function format; handlers must be callables."""
    if handlers is not None:
        if not isinstance(handlers, dict) or not all(callable(h) for h in handlers.values()):
            raise InvalidInputError("tool_handlers must map tool names to callables")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidInputError("tools must be a list of tool definitions")
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidInputError(
                "each tool must be {'type': 'function', 'function': {'name': ..., "
                f"'parameters': {{...}}}}, got {tool!r:.200}"
            )
    return tools


def tool_results(
    results: dict[str, str | tuple[str | None, str | None]], counter: TokenCounter
) -> tuple[ToolResult, ...]:
    """Results given as ``{call_id: output}`` or ``{call_id: (output, error)}``, counted."""
    prepared: list[ToolResult] = []
    for call_id, value in results.items():
        output, error = (value, None) if isinstance(value, str) else value
        if output is None and error is None:
            raise InvalidInputError(f"tool call {call_id!r}: give an output or an error")
        if output is not None and not isinstance(output, str):
            raise InvalidInputError(f"tool call {call_id!r}: output must be a string")
        prepared.append(
            ToolResult(call_id, output, error, counter.tool_result_tokens(output, error))
        )
    return tuple(prepared)


async def file_parts(
    files: Sequence[str | os.PathLike[str]] | None, handler: LargeFileHandler
) -> list[MessagePart]:
    """Attached files as parts: small ones inline, large ones as references."""
    if not files:
        return []
    if isinstance(files, str | bytes | os.PathLike):
        raise InvalidInputError("files must be a list of paths, not a single path")
    return [await handler.handle(path) for path in files]
