"""AgenticMap: one independent multi-step sub-agent per input, in parallel.

Each input gets its own :class:`~mnesis.session.MnesisSession` (stored, linked
to ``parent_session_id``), which runs the tool loop up to ``max_turns`` model
calls. The parent sees only each sub-agent's final text; the sub-agents'
transcripts stay in the store, reachable by session id.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from mnesis.errors import InvalidInputError, LLMError
from mnesis.events.bus import EventBus, MnesisEvent
from mnesis.llm import LLMProvider
from mnesis.models.config import MnesisConfig, OperatorConfig
from mnesis.models.message import TokenUsage
from mnesis.operators._runs import (
    PathLike,
    RunTracker,
    fingerprint,
    open_inputs,
    run_tracked,
)
from mnesis.operators.results import AgentMapBatch, AgentMapResult
from mnesis.operators.templates import compile_template, render
from mnesis.session import MnesisSession, ToolHandler

_WRITING_WORDS = frozenset(
    "write edit delete remove rm create update patch insert move rename exec execute bash "
    "shell run put post upload commit push drop truncate mkdir chmod save set".split()
)


def tool_writes(tool: dict[str, Any]) -> bool:
    """Whether a tool definition may change things.

    A definition says so with ``"read_only": false`` (or ``"writes": true``);
    otherwise its name decides (``write_file``, ``delete``, ``bash`` ... write).
    """
    if "read_only" in tool:
        return not bool(tool["read_only"])
    if "writes" in tool:
        return bool(tool["writes"])
    name = str((tool.get("function") or {}).get("name", ""))
    # Split snake_case, kebab-case, dotted and camelCase names into words.
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return any(word in _WRITING_WORDS for word in re.split(r"[_\-.\s]+", words))


class AgenticMap:
    """Run a sub-agent per input.

    Args:
        config: Concurrency (``OperatorConfig.agentic_map_concurrency``).
        event_bus: Publish ``MAP_*`` events here.
        model: Default model for :meth:`run`.
        provider: Model backend for the sub-sessions.
    """

    def __init__(
        self,
        config: OperatorConfig | None = None,
        event_bus: EventBus | None = None,
        model: str | None = None,
        *,
        provider: LLMProvider | None = None,
    ) -> None:
        self.config = config or OperatorConfig()
        self.event_bus = event_bus
        self.model = model
        self.provider = provider

    async def run(
        self,
        inputs: Iterable[Any],
        agent_prompt_template: str,
        *,
        model: str | None = None,
        concurrency: int | None = None,
        read_only: bool = True,
        tools: list[dict[str, Any]] | None = None,
        tool_handlers: dict[str, ToolHandler] | None = None,
        max_turns: int = 20,
        continuation_message: str = "",
        parent_session_id: str | None = None,
        db_path: str | None = None,
        system_prompt: str = "You are a focused sub-agent. Finish the task, then answer.",
        session_config: MnesisConfig | None = None,
        run_id: str | None = None,
        output_path: PathLike | None = None,
        agent: str = "agentic_map",
        lcm_config: MnesisConfig | None = None,
        pool: object | None = None,
    ) -> AsyncIterator[AgentMapResult]:
        """Yield one :class:`AgentMapResult` per input, in completion order.

        Each result's ``intermediate_outputs`` holds the text of every assistant
        message of the sub-agent in order, the final one (``output_text``) last.
        ``agent`` names the sub-sessions' agent. ``lcm_config`` is mnesis
        0.4.0's name for ``session_config`` (give one, not both); ``pool`` is
        accepted for 0.4.0 code and ignored.

        ``max_turns`` bounds the model calls of each sub-agent. When
        ``continuation_message`` is set and a sub-agent stops at that bound
        while still calling tools, it is sent once more to let it conclude.
        ``inputs`` may be a JSONL path; ``run_id`` makes the run resumable (the
        item statuses live in the store at ``db_path``) and ``output_path``
        receives every result as JSONL.
        """
        template = compile_template(agent_prompt_template)
        if lcm_config is not None:
            if session_config is not None:
                raise InvalidInputError("pass session_config or lcm_config, not both")
            session_config = lcm_config
        chosen = model or self.model
        if not chosen:
            raise InvalidInputError(
                "AgenticMap needs a model: pass model= to AgenticMap() or run()"
            )
        if max_turns < 1:
            raise InvalidInputError("max_turns must be >= 1")
        if read_only:
            writing = [t["function"]["name"] for t in tools or [] if tool_writes(t)]
            writing += [
                name
                for name in tool_handlers or {}
                if tool_writes({"function": {"name": name}})
                and not any(t["function"]["name"] == name for t in tools or [])
            ]
            if writing:
                raise InvalidInputError(
                    f"read_only sub-agents cannot be given tools that write: {writing}; "
                    "pass read_only=False or mark a tool {'read_only': True}"
                )
        clean_tools = [
            {k: v for k, v in t.items() if k not in ("read_only", "writes")} for t in tools or []
        ] or None
        items, total, digest = open_inputs(inputs)
        workers = concurrency or self.config.agentic_map_concurrency
        started = time.perf_counter()
        self._publish(
            MnesisEvent.MAP_STARTED,
            {"operator": "agentic_map", "total": total, "model": chosen},
        )

        async def one(index: int, item: Any) -> AgentMapResult:
            session: MnesisSession | None = None
            outputs: list[str] = []
            usage = TokenUsage()
            try:
                prompt = render(template, item)
                session = await MnesisSession.create(
                    model=chosen,
                    agent=agent,
                    parent_id=parent_session_id,
                    config=session_config,
                    system_prompt=system_prompt,
                    db_path=db_path,
                    provider=self.provider,
                    event_bus=self.event_bus,
                )
                result = await session.send(
                    prompt,
                    tools=clean_tools,
                    tool_handlers=tool_handlers,
                    max_tool_steps=max_turns,
                )
                usage = usage + result.tokens
                if result.finish_reason == "tool_calls" and continuation_message:
                    result = await session.send(continuation_message)
                    usage = usage + result.tokens
                outputs.extend(
                    m.text_content()
                    for m in await session.conversation_messages()
                    if m.role == "assistant" and m.text_content()
                )
                outcome = AgentMapResult(
                    input=item,
                    session_id=session.id,
                    output_text=result.text,
                    success=True,
                    token_usage=usage,
                    intermediate_outputs=outputs,
                    index=index,
                )
            except (LLMError, InvalidInputError) as exc:
                outcome = AgentMapResult(
                    input=item,
                    session_id=session.id if session else None,
                    success=False,
                    error=str(exc),
                    error_kind="llm_error" if isinstance(exc, LLMError) else "validation",
                    token_usage=usage,
                    index=index,
                )
            finally:
                if session is not None:
                    await session.close()
            self._publish(
                MnesisEvent.MAP_ITEM_COMPLETED,
                {
                    "operator": "agentic_map",
                    "index": index,
                    "success": outcome.success,
                    "attempts": 1,
                    "error_kind": outcome.error_kind,
                },
            )
            return outcome

        tracker = None
        if run_id is not None:
            tool_names = sorted(t["function"]["name"] for t in tools or [])
            work = fingerprint(
                agent_prompt_template, chosen, tool_names, max_turns, system_prompt, digest
            )
            tracker = await RunTracker.open(run_id, db_path, "agentic_map", work)
        succeeded = failed = 0
        try:
            async for result in run_tracked(items, one, workers, tracker, output_path):
                succeeded += result.success
                failed += not result.success
                yield result
        finally:  # also when the consumer stops early
            self._publish(
                MnesisEvent.MAP_COMPLETED,
                {
                    "operator": "agentic_map",
                    "total": total,
                    "succeeded": succeeded,
                    "failed": failed,
                    "elapsed_ms": (time.perf_counter() - started) * 1000,
                },
            )

    async def run_all(
        self, inputs: Iterable[Any], agent_prompt_template: str, **kwargs: Any
    ) -> AgentMapBatch:
        """Run everything and return the results in input order (with ``run_id``:
        every item of the run, including those finished by earlier runs)."""
        results = [r async for r in self.run(inputs, agent_prompt_template, **kwargs)]
        if kwargs.get("run_id") is not None:
            tracker = await RunTracker.open_existing(kwargs["run_id"], kwargs.get("db_path"))
            try:
                results = [AgentMapResult.model_validate_json(r) for r in await tracker.results()]
            finally:
                await tracker.close()
        return AgentMapBatch(results=sorted(results, key=lambda r: r.index))

    def _publish(self, event: MnesisEvent, payload: Any) -> None:
        if self.event_bus is not None:
            self.event_bus.publish(event, payload)
