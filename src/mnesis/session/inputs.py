"""What callers hand a session, coerced to parts and checked before anything is written.

Every usage mistake is an :class:`~mnesis.errors.InvalidInputError` raised
here, at the door, before the turn lock is taken, before anything waits for
compaction and before anything is written: a turn that starts never fails
half-way for a bad argument. That includes what the store could not write
(a lone surrogate, a tool input that is not JSON) and a message that cannot
fit the model's window however much is compacted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

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
from mnesis.tokens import MESSAGE_OVERHEAD

# No tokenizer gives a character more than 4 tokens (a BPE token is at least one
# UTF-8 byte; the heuristic counts at most 1.5), so short text needs no counting.
_MAX_TOKENS_PER_CHAR = 4

_PARTS: TypeAdapter[list[MessagePart]] = TypeAdapter(list[MessagePart])


def check_new_session(model: object, system_prompt: object, agent: object) -> None:
    """The arguments of ``MnesisSession.create`` that name the session."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model must be a non-empty string such as 'openai/gpt-4o'")
    if not isinstance(system_prompt, str):
        raise InvalidInputError("system_prompt must be a string")
    if not isinstance(agent, str) or not agent:
        raise InvalidInputError("agent must be a non-empty string")
    for name, text in (("model", model), ("system_prompt", system_prompt), ("agent", agent)):
        check_utf8(text, name)


def check_utf8(text: str, what: str) -> None:
    """``InvalidInputError`` for text the store cannot write as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} contains a character that cannot be stored as UTF-8 "
            f"({text[exc.start]!r} at position {exc.start}: a lone surrogate, as "
            "os.fsdecode() makes from undecodable file names)"
        ) from exc


def check_session_id(session_id: object) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise InvalidInputError("session_id must be a non-empty string")


def check_tokens(tokens: object) -> None:
    if tokens is not None and not isinstance(tokens, TokenUsage):
        raise InvalidInputError("tokens must be a TokenUsage or None")


def check_finish_reason(finish_reason: object) -> None:
    if not isinstance(finish_reason, str) or not finish_reason:
        raise InvalidInputError("finish_reason must be a non-empty string such as 'stop'")
    check_utf8(finish_reason, "finish_reason")


def tool_steps_allowed(max_tool_steps: int | None, default: int) -> int:
    """Model calls one turn may make (the first included): ``None`` for the default.

    1 runs no tool: the model's calls are returned to the caller. 0 and below
    are refused (a turn calls the model at least once), never read as "default".
    """
    if max_tool_steps is None:
        return default
    if not isinstance(max_tool_steps, int) or isinstance(max_tool_steps, bool):
        raise InvalidInputError(f"max_tool_steps must be a whole number, not {max_tool_steps!r}")
    if max_tool_steps < 1:
        raise InvalidInputError(
            f"max_tool_steps must be >= 1 (got {max_tool_steps}): it counts model calls, the "
            "first included; 1 runs no tool, None means the configured default"
        )
    return max_tool_steps


def check_fits_window(
    parts: Sequence[MessagePart], counter: TokenCounter, *, system_prompt: str, usable: int
) -> None:
    """``InvalidInputError`` for a user message that alone, with the system prompt,
    is larger than the usable context: no compaction could ever make room for it."""
    bound = sum(
        len(p.text) * _MAX_TOKENS_PER_CHAR if isinstance(p, TextPart) else counter.part_tokens(p)[0]
        for p in parts
    )
    fixed = counter.system_prompt_tokens(system_prompt) + MESSAGE_OVERHEAD
    if bound + fixed <= usable:
        return  # surely fits: nothing counted twice
    tokens = sum(counter.part_tokens(p)[0] for p in parts)
    if tokens + fixed > usable:
        raise InvalidInputError(
            f"the message is {tokens:,} tokens; with the system prompt it exceeds the "
            f"{usable:,}-token usable context of {counter.model!r}, so nothing was sent or "
            "stored. Save the text to a file and attach it with send(..., files=[path]): a "
            "large file goes to the model as a reference with an outline"
        )


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
        check_utf8(value, what)
        return [TextPart(text=value)]
    if not isinstance(value, list):
        raise InvalidInputError(
            f"{what} must be a string or a list of parts, not {type(value).__name__}"
        )
    try:
        parts = _PARTS.validate_python(
            [
                p.model_dump() if isinstance(p, TextPart | ToolPart | FileRefPart) else p
                for p in value
            ]
        )
    except ValidationError as exc:
        raise InvalidInputError(f"{what} has an invalid part: {exc}") from exc
    for part in parts:
        _check_storable(part, what)
    return parts


def _check_storable(part: MessagePart, what: str) -> None:
    """``InvalidInputError`` for a part the store could not write."""
    if isinstance(part, TextPart):
        check_utf8(part.text, what)
        return
    try:
        part.model_dump_json()
    except PydanticSerializationError as exc:
        detail = str(exc).removeprefix("Error serializing to JSON: ")
        kind = "tool call" if isinstance(part, ToolPart) else "file reference"
        raise InvalidInputError(
            f"{what} has a {kind} that cannot be stored as JSON (its input must hold only "
            f"strings, numbers, booleans, None, lists and dicts): {detail}"
        ) from exc


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
    if not isinstance(results, dict):
        raise InvalidInputError("tool results must be a dict {call_id: output}")
    prepared: list[ToolResult] = []
    for call_id, value in results.items():
        if not isinstance(value, str) and not (isinstance(value, tuple) and len(value) == 2):
            raise InvalidInputError(
                f"tool call {call_id!r}: give an output string or an (output, error) pair"
            )
        output, error = (value, None) if isinstance(value, str) else value
        if output is None and error is None:
            raise InvalidInputError(f"tool call {call_id!r}: give an output or an error")
        if output is not None and not isinstance(output, str):
            raise InvalidInputError(f"tool call {call_id!r}: output must be a string")
        if error is not None and not isinstance(error, str):
            raise InvalidInputError(f"tool call {call_id!r}: error must be a string")
        check_utf8(output or "", f"the output of tool call {call_id!r}")
        check_utf8(error or "", f"the error of tool call {call_id!r}")
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
