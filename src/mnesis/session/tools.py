"""The tool loop's pieces: running handlers, spotting doom loops, memory tools.

A model's tool calls are run through the caller's handlers (sync or async,
``handler(**arguments)``); a handler's failure becomes an error result fed
back to the model, never an exception out of ``send()``. The same call
repeated ``doom_loop_threshold`` times in a row is a doom loop: it is
published, the loop stops, and the calls it did not run get an error result
so the model sees why on its next turn.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from mnesis.context import tool_signature
from mnesis.errors import InvalidInputError
from mnesis.events.bus import MnesisEvent
from mnesis.models.message import ToolPart
from mnesis.recall import MEMORY_TOOL_NAMES, Recall, memory_tool_handlers, memory_tool_specs
from mnesis.session.core import SessionCore
from mnesis.session.inputs import validated_tools
from mnesis.session.writer import SessionWriter
from mnesis.store import ToolResult

ToolHandler = Callable[..., Any]


class ToolLoop:
    """Runs one session's tool calls and watches them for doom loops."""

    def __init__(self, core: SessionCore, recall: Recall, writer: SessionWriter) -> None:
        self._core = core
        self._recall = recall
        self._writer = writer

    def offer(
        self,
        tools: list[Any] | None,
        handlers: dict[str, ToolHandler] | None,
        *,
        memory_tools: bool,
    ) -> tuple[list[dict[str, Any]] | None, dict[str, ToolHandler] | None]:
        """The tools and handlers of a turn, validated, memory tools added if asked."""
        tool_list = validated_tools(tools, handlers)
        if not memory_tools:
            return tool_list, handlers
        names = {t["function"]["name"] for t in tool_list or []}
        clash = names & set(MEMORY_TOOL_NAMES)
        if clash:
            raise InvalidInputError(f"tool names {sorted(clash)} are reserved for memory tools")
        # Expansions are capped at an eighth of the usable context.
        cap = max(2_000, min(48_000, self._core.usable_tokens // 2))
        memory = memory_tool_handlers(self._recall, max_chars=cap)
        return [*(tool_list or []), *memory_tool_specs()], {**(handlers or {}), **memory}

    def detect_doom_loop(self, message_id: str, calls: list[ToolPart]) -> bool:
        """True (and published) when the last ``doom_loop_threshold`` tool calls are identical."""
        if not calls:
            return False
        core = self._core
        threshold = core.config.session.doom_loop_threshold
        recent = core.live.window.recent_tool_calls(threshold)
        if len(recent) < threshold or len({tool_signature(c) for c in recent}) != 1:
            return False
        core.bus.publish(
            MnesisEvent.DOOM_LOOP_DETECTED,
            {
                "session_id": core.id,
                "message_id": message_id,
                "tool_name": calls[-1].tool_name,
                "repeat_count": threshold,
            },
        )
        return True

    async def run_calls(self, calls: list[ToolPart], handlers: dict[str, ToolHandler]) -> None:
        """Run each call's handler in order and store the results together."""
        counter = self._core.counter
        results = []
        for call in calls:
            output, error = await call_handler(handlers[call.tool_name], call)
            results.append(
                ToolResult(
                    call.tool_call_id, output, error, counter.tool_result_tokens(output, error)
                )
            )
        await self._writer.fill_tool_results(tuple(results))

    async def refuse_repeated_calls(
        self, calls: list[ToolPart], handlers: dict[str, ToolHandler]
    ) -> None:
        """Give the calls a doom loop stopped an error result instead of running them."""
        threshold = self._core.config.session.doom_loop_threshold
        error = (
            f"not run: the same call was repeated {threshold} times in a row; "
            "try something different"
        )
        tokens = self._core.counter.tool_result_tokens(None, error)
        results = tuple(
            ToolResult(call.tool_call_id, None, error, tokens)
            for call in calls
            if call.tool_name in handlers
        )
        if results:
            await self._writer.fill_tool_results(results)


async def call_handler(handler: ToolHandler, call: ToolPart) -> tuple[str | None, str | None]:
    """Run a tool handler: ``(output, None)``, or ``(None, error)`` for the model to read."""
    if "_raw" in call.input and len(call.input) == 1:
        return None, f"arguments were not a JSON object: {call.input['_raw'][:200]}"
    try:
        outcome = handler(**call.input)
        if inspect.isawaitable(outcome):
            outcome = await outcome
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if isinstance(outcome, str):
        return outcome, None
    try:
        return json.dumps(outcome, default=str), None
    except (TypeError, ValueError):
        return str(outcome), None
