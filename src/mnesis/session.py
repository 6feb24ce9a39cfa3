"""The session facade: append → assemble → call → persist.

A :class:`MnesisSession` owns one conversation. Each turn it appends the user
message to the store, renders the active context (kept in memory and updated
incrementally, validated against the store's context version so another
process's writes are picked up), streams the model's reply live to the
caller, and persists the reply together with its token counts and a turn
snapshot in one transaction. Failures leave the store consistent: the user
message stays, the failed reply is recorded as failed and never counted.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mnesis.compaction import CompactionEngine
from mnesis.context import (
    ContextWindow,
    needs_cache_breakpoints,
    render_file_block,
    tool_signature,
    with_cache_breakpoints,
)
from mnesis.errors import (
    InvalidInputError,
    LLMError,
    LLMPermanentError,
    SessionClosedError,
)
from mnesis.events.bus import EventBus, Handler, MnesisEvent
from mnesis.files import LargeFileHandler
from mnesis.llm import LLMProvider, default_provider
from mnesis.llm.base import LLMRequest, ResponseAccumulator
from mnesis.llm.limits import ModelLimits, resolve_limits, usable_context
from mnesis.llm.retry import as_llm_error, stream_with_retry
from mnesis.models.config import MnesisConfig
from mnesis.models.ids import new_id
from mnesis.models.info import SessionInfo
from mnesis.models.message import (
    FileRefPart,
    FinishReason,
    MessagePart,
    MessageStatus,
    MessageWithParts,
    Role,
    TextPart,
    TokenUsage,
    ToolPart,
    ToolStatus,
)
from mnesis.models.results import (
    CompactionResult,
    ContextBreakdown,
    RecordResult,
    TextDelta,
    TurnComplete,
    TurnResult,
    TurnSnapshot,
)
from mnesis.recall import (
    MEMORY_TOOL_NAMES,
    ExpandResult,
    FileDescription,
    GrepResult,
    MessageDescription,
    Recall,
    SummaryDescription,
    memory_tool_handlers,
    memory_tool_specs,
)
from mnesis.store import (
    AppendOutcome,
    ContextEntry,
    NewMessage,
    NewPart,
    SessionRecord,
    Store,
    ToolResult,
    acquire_store,
    release_store,
    resolve_db_url,
)
from mnesis.store import config_json
from mnesis.tokens import MESSAGE_OVERHEAD, TokenEstimator

logger = logging.getLogger("mnesis.session")

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
_PARTS: TypeAdapter[list[MessagePart]] = TypeAdapter(list[MessagePart])

OnPart = Callable[[MessagePart], Awaitable[None] | None]
ToolHandler = Callable[..., Any]


@dataclass(slots=True)
class _Step:
    message_id: str
    text: str
    finish_reason: str
    usage: TokenUsage
    cost: float
    tool_calls: list[ToolPart]
    doom_loop: bool = False


@dataclass(slots=True)
class _Turn:
    steps: list[_Step] = field(default_factory=list)
    callback_error: BaseException | None = None
    hard_result: CompactionResult | None = None


class _SessionOpener:
    """What ``MnesisSession.open()`` returns: ``async with`` it, or ``await`` it."""

    def __init__(self, factory: Callable[[], Awaitable[MnesisSession]]) -> None:
        self._factory = factory
        self._session: MnesisSession | None = None

    async def __aenter__(self) -> MnesisSession:
        self._session = await self._factory()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def __await__(self) -> Generator[Any, None, MnesisSession]:
        return self._factory().__await__()


class MnesisSession:
    """One persistent conversation with a model. Create with :meth:`create`,
    :meth:`open` or :meth:`load`; never construct directly."""

    def __init__(
        self,
        *,
        record: SessionRecord,
        store: Store,
        config: MnesisConfig,
        provider: LLMProvider,
        limits: ModelLimits,
        usable_tokens: int,
        event_bus: EventBus,
        window: ContextWindow,
        version: int,
    ) -> None:
        self._record = record
        self._store = store
        self._config = config
        self._provider = provider
        self._limits = limits
        self.usable_tokens = usable_tokens
        self._bus = event_bus
        self._window = window
        self._version = version
        self._estimator = TokenEstimator(record.model)
        self._usage = record.tokens
        self._cost = record.cost
        self._turns = record.turn_count
        self._closed = False
        self._turn_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prompt_tokens: dict[str, int] = {}
        self._engine = CompactionEngine(
            session_id=record.id,
            session_model=record.model,
            store=store,
            provider=provider,
            config=config,
            bus=event_bus,
        )
        self._recall = Recall(store, record.id)
        self._files = LargeFileHandler(config.file, estimator=self._estimator, store=store)
        self._compaction_task: asyncio.Task[None] | None = None
        self._last_compaction: CompactionResult | None = None
        self._stale = False

    # -- lifecycle --------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        *,
        model: str,
        agent: str = "default",
        parent_id: str | None = None,
        config: MnesisConfig | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        db_path: str | None = None,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        session_id: str | None = None,
    ) -> MnesisSession:
        """Create and persist a new session.

        Args:
            model: litellm model string, e.g. ``"anthropic/claude-opus-4-6"``.
            agent: Free-form agent name stored with the session.
            parent_id: Id of an existing session this one belongs to.
            config: Configuration; defaults to ``MnesisConfig()``.
            system_prompt: The session's system prompt.
            db_path: Database file or URL; overrides config and ``MNESIS_DB_URL``.
            provider: The model backend; default litellm (the mock under
                ``MNESIS_MOCK_LLM=1``).
            event_bus: Share a bus between sessions; default a new one.
            session_id: Choose the id instead of generating one.
        """
        if not isinstance(model, str) or not model.strip():
            raise InvalidInputError("model must be a non-empty string such as 'openai/gpt-4o'")
        if not isinstance(system_prompt, str):
            raise InvalidInputError("system_prompt must be a string")
        if not isinstance(agent, str) or not agent:
            raise InvalidInputError("agent must be a non-empty string")
        config = config or MnesisConfig()
        limits = resolve_limits(model, config.model_overrides)
        usable = usable_context(limits, config)
        store = await acquire_store(resolve_db_url(db_path, config.store), config.store)
        record = SessionRecord(
            id=session_id or new_id("sess"),
            model=model,
            agent=agent,
            parent_id=parent_id,
            system_prompt=system_prompt,
            config_json=config_json(config.model_dump(mode="json", exclude={"store"})),
            created_at=time.time(),
        )
        try:
            await store.create_session(record)
        except BaseException:
            await release_store(store)
            raise
        session = cls(
            record=record,
            store=store,
            config=config,
            provider=provider or default_provider(),
            limits=limits,
            usable_tokens=usable,
            event_bus=event_bus or EventBus(),
            window=ContextWindow(),
            version=0,
        )
        session._bus.publish(
            MnesisEvent.SESSION_CREATED,
            {"session_id": record.id, "model": model, "agent": agent, "parent_id": parent_id},
        )
        return session

    @classmethod
    def open(
        cls,
        *,
        model: str,
        agent: str = "default",
        parent_id: str | None = None,
        config: MnesisConfig | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        db_path: str | None = None,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        session_id: str | None = None,
    ) -> _SessionOpener:
        """Create a session for ``async with``; it is closed when the block exits."""
        return _SessionOpener(
            lambda: cls.create(
                model=model,
                agent=agent,
                parent_id=parent_id,
                config=config,
                system_prompt=system_prompt,
                db_path=db_path,
                provider=provider,
                event_bus=event_bus,
                session_id=session_id,
            )
        )

    @classmethod
    async def load(
        cls,
        session_id: str,
        config: MnesisConfig | None = None,
        db_path: str | None = None,
        *,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
    ) -> MnesisSession:
        """Resume a stored session: model, system prompt, config and history.

        Raises:
            SessionNotFoundError: No session with that id in the store.
        """
        if not isinstance(session_id, str) or not session_id:
            raise InvalidInputError("session_id must be a non-empty string")
        store_config = (config or MnesisConfig()).store
        store = await acquire_store(resolve_db_url(db_path, store_config), store_config)
        try:
            record = await store.get_session(session_id)
            if config is None:
                config = MnesisConfig.model_validate(json.loads(record.config_json))
            limits = resolve_limits(record.model, config.model_overrides)
            usable = usable_context(limits, config)
            version, entries = await store.context_entries(session_id)
        except BaseException:
            await release_store(store)
            raise
        return cls(
            record=record,
            store=store,
            config=config,
            provider=provider or default_provider(),
            limits=limits,
            usable_tokens=usable,
            event_bus=event_bus or EventBus(),
            window=ContextWindow(entries),
            version=version,
        )

    @classmethod
    async def list_sessions(
        cls, db_path: str | None = None, config: MnesisConfig | None = None
    ) -> list[SessionInfo]:
        """Every stored session in the database, newest first."""
        store_config = (config or MnesisConfig()).store
        store = await acquire_store(resolve_db_url(db_path, store_config), store_config)
        try:
            return await store.list_sessions()
        finally:
            await release_store(store)

    async def info(self) -> SessionInfo:
        """This session at a glance: turns, messages, summaries, tokens, cost."""
        self._check_open()
        (info,) = await self._store.list_sessions(self.id)
        return info

    async def covering_summaries(self, message_ids: list[str] | None = None) -> dict[str, str]:
        """For summarised messages, the summary in the context that covers each now."""
        self._check_open()
        if message_ids is None:
            message_ids = [m.id for m in await self._store.get_messages(self.id)]
        return await self._store.covering_summaries(self.id, tuple(message_ids))

    async def close(self, *, abort_compaction: bool = False) -> None:
        """Finish in-flight turns (streams abandoned by their consumer included),
        then release the store. Idempotent; later turns raise SessionClosedError."""
        if self._closed:
            return
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        async with self._turn_lock:
            pass
        task = self._compaction_task
        if task is not None and not task.done():
            if abort_compaction:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._bus.publish(MnesisEvent.SESSION_CLOSED, {"session_id": self.id})
        await self._bus.drain()
        await release_store(self._store)

    async def __aenter__(self) -> MnesisSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"MnesisSession {self._record.id} was never closed; use 'async with' or "
                "'await session.close()'",
                ResourceWarning,
                stacklevel=2,
            )

    # -- properties -------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def model(self) -> str:
        return self._record.model

    @property
    def system_prompt(self) -> str:
        return self._record.system_prompt

    @property
    def config(self) -> MnesisConfig:
        return self._config

    @property
    def limits(self) -> ModelLimits:
        return self._limits

    @property
    def event_bus(self) -> EventBus:
        return self._bus

    @property
    def token_usage(self) -> TokenUsage:
        """Tokens used by the session's model calls — every completed turn and
        every compaction summary — across restarts."""
        return self._usage

    @property
    def cost(self) -> float:
        """Accumulated cost in USD (0.0 when the model has no known prices)."""
        return self._cost

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def compaction_in_progress(self) -> bool:
        """True while a background compaction pass runs."""
        return self._compaction_task is not None and not self._compaction_task.done()

    @property
    def last_compaction(self) -> CompactionResult | None:
        """The result of the most recent compaction pass of this session object."""
        return self._last_compaction

    def subscribe(self, event: MnesisEvent | None, handler: Handler) -> None:
        """Call ``handler(event, payload)`` whenever ``event`` is published."""
        self._bus.subscribe(event, handler)

    # -- reads ------------------------------------------------------------------

    async def messages(self) -> list[MessageWithParts]:
        """The whole stored history, failed replies included, oldest first."""
        self._check_open()
        return await self._store.get_messages(self.id)

    async def context_for_next_turn(self, system_prompt: str | None = None) -> list[dict[str, Any]]:
        """The chat messages the next model call would receive, for your own SDK."""
        self._check_open()
        async with self._turn_lock:
            self._stale = False
            await self._refresh_if_stale()
            await self._ensure_under_hard_limit()
            messages = self._window.messages(self._prompt(system_prompt))
        return [_copy_message(m) for m in messages]

    async def context_breakdown(self) -> ContextBreakdown:
        """Where the tokens of the current context go (system, summaries, messages, tools)."""
        self._check_open()
        await self._refresh_if_stale()
        return self._window.breakdown(self._system_tokens(None))

    async def history(self) -> list[TurnSnapshot]:
        """One snapshot of the context's token breakdown per completed turn."""
        self._check_open()
        return await self._store.snapshots(self.id)

    async def verify(self) -> list[str]:
        """Problems the store finds with this session's invariants (``[]``: none)."""
        self._check_open()
        return await self._store.verify(self.id)

    # -- turns ------------------------------------------------------------------

    async def send(
        self,
        message: str | list[MessagePart],
        *,
        tools: list[Any] | None = None,
        on_part: OnPart | None = None,
        system_prompt: str | None = None,
        tool_handlers: dict[str, ToolHandler] | None = None,
        max_tool_steps: int | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        pin: bool = False,
        memory_tools: bool = False,
        files: Sequence[str | os.PathLike[str]] | None = None,
    ) -> TurnResult:
        """Send a user message and return the model's reply, persisted.

        Args:
            message: Text, or a list of parts (text and file references).
            tools: Tool definitions in the OpenAI function format.
            on_part: Called with a ``TextPart`` per streamed chunk, live.
            system_prompt: Replaces the session's system prompt for this turn.
            tool_handlers: ``{"name": callable}``; calls to these tools are run
                (``handler(**arguments)``, sync or async), their results stored
                and fed back until the model answers or ``max_tool_steps``.
            max_tool_steps: Model calls allowed in one tool loop
                (default ``config.session.max_tool_steps``).
            tool_choice: Passed to the provider (``"auto"``, ``"required"`` or a
                specific function); applies to the first model call of the turn.
            pin: Keep this user message verbatim in every future context.
            memory_tools: Offer the model ``lcm_grep``, ``lcm_describe`` and
                ``lcm_expand`` and run its calls to them in the tool loop.
            files: Paths to attach: small files inline, large ones as references.
        """
        self._check_open()
        parts = _user_parts(message) + await self._file_parts(files)
        tool_list = _validate_tools(tools, tool_handlers)
        if memory_tools:
            tool_list, tool_handlers = self._with_memory_tools(tool_list, tool_handlers)
        steps_allowed = max_tool_steps or self._config.session.max_tool_steps
        if steps_allowed < 1:
            raise InvalidInputError("max_tool_steps must be >= 1")
        async with self._turn_lock:
            self._check_open(allow_closing=True)
            await self._sync_after_compaction()
            if pin:
                self._check_pin_budget(sum(self._count(p)[0] for p in parts))
            user_id = await self._append_user(parts)
            if pin:
                await self._pin(user_id)
            turn = _Turn()
            while True:
                turn.hard_result = await self._ensure_under_hard_limit() or turn.hard_result
                choice = tool_choice if not turn.steps else None
                step = await self._model_step(tool_list, choice, on_part, system_prompt, turn)
                turn.steps.append(step)
                if step.doom_loop and tool_handlers:
                    await self._refuse_repeated_calls(step, tool_handlers)
                if (
                    step.doom_loop
                    or not step.tool_calls
                    or not tool_handlers
                    or any(c.tool_name not in tool_handlers for c in step.tool_calls)
                    or len(turn.steps) >= steps_allowed
                ):
                    break
                await self._run_tools(step, tool_handlers)
            started = self._maybe_start_compaction()
        if turn.callback_error is not None:
            raise turn.callback_error
        return _turn_result(
            turn, user_id, started or turn.hard_result is not None, turn.hard_result
        )

    async def stream(
        self,
        message: str | list[MessagePart],
        *,
        tools: list[Any] | None = None,
        system_prompt: str | None = None,
        tool_handlers: dict[str, ToolHandler] | None = None,
        max_tool_steps: int | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        memory_tools: bool = False,
        files: Sequence[str | os.PathLike[str]] | None = None,
    ) -> AsyncIterator[TextDelta | TurnComplete]:
        """Yield ``TextDelta`` events live as the model writes, then ``TurnComplete``.

        The turn runs in its own task: if the consumer stops early or is
        cancelled, the turn still completes, is persisted and counted, and
        :meth:`close` waits for it.
        """
        self._check_open()
        queue: asyncio.Queue[TextDelta | None] = asyncio.Queue()

        def forward(part: MessagePart) -> None:
            if isinstance(part, TextPart) and part.text:
                queue.put_nowait(TextDelta(text=part.text))

        task = asyncio.get_running_loop().create_task(
            self.send(
                message,
                tools=tools,
                on_part=forward,
                system_prompt=system_prompt,
                tool_handlers=tool_handlers,
                max_tool_steps=max_tool_steps,
                tool_choice=tool_choice,
                memory_tools=memory_tools,
                files=files,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: queue.put_nowait(None))
        while True:
            delta = await queue.get()
            if delta is None:
                break
            yield delta
        yield TurnComplete(result=task.result())

    async def record(
        self,
        user_message: str | list[MessagePart],
        assistant_response: str | list[MessagePart],
        *,
        tokens: TokenUsage | None = None,
        finish_reason: str = "stop",
        files: Sequence[str | os.PathLike[str]] | None = None,
    ) -> RecordResult:
        """Persist a turn that your own SDK produced (BYO-LLM), in one transaction.

        Without ``tokens`` the usage is estimated from the stored counts.
        Tool calls go in ``assistant_response`` as ``ToolPart``s; results can
        be included or recorded later with :meth:`record_tool_result`.
        """
        self._check_open()
        if tokens is not None and not isinstance(tokens, TokenUsage):
            raise InvalidInputError("tokens must be a TokenUsage or None")
        user_parts = _user_parts(user_message) + await self._file_parts(files)
        assistant_parts = _assistant_parts(assistant_response)
        async with self._turn_lock:
            self._check_open(allow_closing=True)
            await self._sync_after_compaction()
            hard = await self._ensure_under_hard_limit()
            now = time.time()
            user = self._new_message(new_id("msg"), "user", user_parts, now)
            assistant = self._new_message(
                new_id("msg"),
                "assistant",
                assistant_parts,
                now,
                finish_reason=str(finish_reason),
                tokens=tokens,
            )
            usage = tokens or TokenUsage(
                input=self._system_tokens(None) + self._window.token_count + user.token_count,
                output=assistant.token_count,
            )
            cost = self._limits.cost(tokens) if tokens is not None else 0.0
            snapshot = self._snapshot(
                extra_tokens=user.token_count + assistant.token_count + 2 * MESSAGE_OVERHEAD,
                hard_result=hard,
            )
            outcome = await self._store.append(
                self.id, (user, assistant), usage=usage, cost=cost, snapshot=snapshot
            )
            await self._absorb(outcome, (user, assistant), usage, cost)
            doom = self._check_doom(
                assistant.id, [p for p in assistant_parts if isinstance(p, ToolPart)]
            )
            started = self._maybe_start_compaction()
        return RecordResult(
            user_message_id=user.id,
            assistant_message_id=assistant.id,
            tokens=usage,
            compaction_triggered=started or hard is not None,
            doom_loop_detected=doom,
        )

    async def record_tool_result(
        self, tool_call_id: str, output: str | None = None, *, error: str | None = None
    ) -> None:
        """Store the result of a tool call the model made; it then appears in the
        context right after the call. A call takes exactly one result."""
        await self.record_tool_results({tool_call_id: (output, error)})

    async def record_tool_results(
        self, results: dict[str, str | tuple[str | None, str | None]]
    ) -> None:
        """Store several results at once: ``{call_id: output}`` or
        ``{call_id: (output, error)}``; all or none are written."""
        self._check_open()
        prepared: list[ToolResult] = []
        for call_id, value in results.items():
            output, error = (value, None) if isinstance(value, str) else value
            if output is None and error is None:
                raise InvalidInputError(f"tool call {call_id!r}: give an output or an error")
            if output is not None and not isinstance(output, str):
                raise InvalidInputError(f"tool call {call_id!r}: output must be a string")
            text = output if output is not None else f"Error: {error}"
            tokens = self._estimator.estimate(text) + MESSAGE_OVERHEAD
            prepared.append(ToolResult(call_id, output, error, tokens))
        async with self._turn_lock:
            self._check_open(allow_closing=True)
            await self._fill(tuple(prepared))

    # -- recall -----------------------------------------------------------------

    async def grep(
        self,
        pattern: str,
        *,
        summary_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
        regex: bool = False,
    ) -> GrepResult:
        """Search the session's whole stored history (not just the active context).

        Plain text matches case-insensitively where a word starts, through the
        full-text index; ``regex=True`` scans with a time bound. Each match
        names the summary that covers it now (``None`` if verbatim).
        """
        self._check_open()
        return await self._recall.grep(
            pattern, summary_id=summary_id, limit=limit, offset=offset, regex=regex
        )

    async def describe(
        self, item_id: str
    ) -> SummaryDescription | MessageDescription | FileDescription:
        """What a summary, message or file id is, and where it sits now."""
        self._check_open()
        return await self._recall.describe(item_id)

    async def expand(
        self, summary_id: str, *, limit: int | None = None, offset: int = 0
    ) -> ExpandResult:
        """The original messages under a summary, recursively, verbatim, in order."""
        self._check_open()
        return await self._recall.expand(summary_id, limit=limit, offset=offset)

    def memory_tools(self) -> list[dict[str, Any]]:
        """Definitions of ``lcm_grep``, ``lcm_describe``, ``lcm_expand`` (OpenAI format)."""
        return memory_tool_specs()

    def _with_memory_tools(
        self,
        tools: list[dict[str, Any]] | None,
        handlers: dict[str, ToolHandler] | None,
    ) -> tuple[list[dict[str, Any]], dict[str, ToolHandler]]:
        names = {t["function"]["name"] for t in tools or []}
        clash = names & set(MEMORY_TOOL_NAMES)
        if clash:
            raise InvalidInputError(f"tool names {sorted(clash)} are reserved for memory tools")
        # Expansions are capped at an eighth of the usable context.
        cap = max(2_000, min(48_000, self.usable_tokens // 2))
        memory = memory_tool_handlers(self._recall, max_chars=cap)
        return [*(tools or []), *memory_tool_specs()], {**(handlers or {}), **memory}

    async def compact(self) -> CompactionResult:
        """Run a compaction pass now (after any running one) and return its result."""
        self._check_open()
        await self._wait_for_compaction()
        async with self._turn_lock:
            result = await self._engine.run_pass(
                usable=self.usable_tokens,
                system_tokens=self._system_tokens(None),
                force=True,
                reason="manual",
            )
            self._last_compaction = result
            await self._count_compaction(result)
            await self._reload()
        return result

    async def wait_for_compaction(self) -> CompactionResult | None:
        """Wait for a running background pass; its result (None if none ever ran)."""
        self._check_open()
        await self._wait_for_compaction()
        return self._last_compaction

    async def pin(self, message_id: str) -> None:
        """Keep a message verbatim in every future context.

        Pinned tokens count against the budget: pinning more than half of the
        usable context is refused with ``InvalidInputError``.
        """
        self._check_open()
        async with self._turn_lock:
            await self._sync_after_compaction()
            await self._pin(message_id)

    # -- internals --------------------------------------------------------------

    async def _file_parts(
        self, files: Sequence[str | os.PathLike[str]] | None
    ) -> list[MessagePart]:
        if not files:
            return []
        if isinstance(files, str | bytes | os.PathLike):
            raise InvalidInputError("files must be a list of paths, not a single path")
        return [await self._files.handle(path) for path in files]

    def _check_pin_budget(self, adding: int) -> None:
        pinned = sum(e.token_count for e in self._window.entries if e.pinned)
        limit = self.usable_tokens // 2
        if pinned + adding > limit:
            raise InvalidInputError(
                f"pinning would keep {pinned + adding} tokens verbatim, more than half of the "
                f"usable context ({limit} of {self.usable_tokens})"
            )

    async def _pin(self, message_id: str) -> None:
        entry = self._window.get(message_id)
        self._check_pin_budget(entry.token_count if entry is not None and not entry.pinned else 0)
        await self._store.pin(self.id, message_id)
        await self._reload()

    def _context_tokens(self) -> int:
        return self._system_tokens(None) + self._window.token_count

    def _maybe_start_compaction(self) -> bool:
        """Start a background pass when the context is past the soft threshold."""
        if not self._config.compaction.auto or self.compaction_in_progress or self._closed:
            return False
        if self._context_tokens() <= self._engine.soft_limit(self.usable_tokens):
            return False
        self._compaction_task = asyncio.get_running_loop().create_task(self._background_pass())
        return True

    async def _background_pass(self) -> None:
        try:
            self._last_compaction = await self._engine.run_pass(
                usable=self.usable_tokens, system_tokens=self._system_tokens(None)
            )
            await self._count_compaction(self._last_compaction)
        except Exception:
            logger.exception("background compaction of session %s failed", self.id)
        finally:
            self._stale = True

    async def _count_compaction(self, result: CompactionResult) -> None:
        """The summariser's tokens and cost count toward the session's totals."""
        if not result.tokens.effective_total():
            return
        await self._store.append(self.id, (), usage=result.tokens, cost=result.cost)
        self._usage = self._usage + result.tokens
        self._cost += result.cost

    async def _wait_for_compaction(self) -> None:
        task = self._compaction_task
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def _sync_after_compaction(self) -> None:
        if self._stale:
            self._stale = False
            await self._reload()

    async def _ensure_under_hard_limit(self) -> CompactionResult | None:
        """Past the usable context, wait for (or run) a pass before calling a model."""
        if not self._config.compaction.auto or self._context_tokens() <= self.usable_tokens:
            return None
        await self._wait_for_compaction()
        await self._sync_after_compaction()
        if self._context_tokens() <= self.usable_tokens:
            return self._last_compaction
        deadline = time.monotonic() + self._config.compaction.summary_timeout * 2
        while True:
            result = await self._engine.run_pass(
                usable=self.usable_tokens, system_tokens=self._system_tokens(None), reason="hard"
            )
            await self._count_compaction(result)
            await self._reload()
            if not result.skipped or self._context_tokens() <= self.usable_tokens:
                break
            if time.monotonic() > deadline:
                break  # the other compactor never finished; go on rather than hang
            await asyncio.sleep(0.2)  # another process is compacting: let it finish
        self._last_compaction = result
        return result

    def _check_open(self, *, allow_closing: bool = False) -> None:
        if self._closed and not (allow_closing and self._turn_lock.locked()):
            raise SessionClosedError(
                f"session {self.id} is closed; use MnesisSession.load({self.id!r}) to resume it"
            )

    def _prompt(self, override: str | None) -> str:
        return self._record.system_prompt if override is None else override

    def _system_tokens(self, override: str | None) -> int:
        prompt = self._prompt(override)
        if not prompt:
            return 0
        count = self._prompt_tokens.get(prompt)
        if count is None:
            count = self._estimator.estimate(prompt) + MESSAGE_OVERHEAD
            if len(self._prompt_tokens) > 32:
                self._prompt_tokens.clear()
            self._prompt_tokens[prompt] = count
        return count

    def _count(self, part: MessagePart) -> tuple[int, int]:
        """Tokens of a part's content and of its tool result (counted once, stored)."""
        estimate = self._estimator.estimate
        if isinstance(part, TextPart):
            return estimate(part.text), 0
        if isinstance(part, FileRefPart):
            return estimate(render_file_block(part)), 0
        call = estimate(part.tool_name) + estimate(json.dumps(part.input, default=str)) + 8
        if part.output is not None:
            return call, estimate(part.output) + MESSAGE_OVERHEAD
        if part.error_message is not None:
            return call, estimate(f"Error: {part.error_message}") + MESSAGE_OVERHEAD
        return call, 0

    def _new_message(
        self,
        message_id: str,
        role: Role,
        parts: Sequence[MessagePart],
        created_at: float,
        *,
        status: MessageStatus = MessageStatus.COMPLETE,
        finish_reason: str | None = None,
        error: str | None = None,
        tokens: TokenUsage | None = None,
        cost: float = 0.0,
    ) -> NewMessage:
        counted = []
        for part in parts:
            content, result = self._count(part)
            counted.append(NewPart(part, content, result))
        return NewMessage(
            id=message_id,
            role=role,
            parts=tuple(counted),
            created_at=created_at,
            model=self.model if role == "assistant" else None,
            status=status,
            finish_reason=finish_reason,
            error=error,
            tokens=tokens or TokenUsage(),
            cost=cost,
        )

    def _snapshot(
        self, *, extra_tokens: int, hard_result: CompactionResult | None = None
    ) -> TurnSnapshot:
        breakdown = self._window.breakdown(self._system_tokens(None))
        will_start = (
            self._config.compaction.auto
            and not self.compaction_in_progress
            and breakdown.total + extra_tokens > self._engine.soft_limit(self.usable_tokens)
        )
        return TurnSnapshot(
            turn_index=self._turns + 1,
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

    async def _refresh_if_stale(self) -> None:
        record = await self._store.get_session(self.id)
        if record.context_version != self._version:
            await self._reload()

    async def _reload(self) -> None:
        self._version, entries = await self._store.context_entries(self.id)
        self._window.reset(entries)

    async def _absorb(
        self,
        outcome: AppendOutcome,
        messages: Sequence[NewMessage],
        usage: TokenUsage | None = None,
        cost: float = 0.0,
    ) -> None:
        """Bring the in-memory window and counters up to date after a write."""
        if outcome.version_before != self._version:
            await self._reload()  # another writer touched the context meanwhile
        else:
            for msg in messages:
                if msg.status == MessageStatus.COMPLETE:
                    self._window.append(_entry(msg))
            self._version = outcome.version_after
        if usage is not None:
            self._usage = self._usage + usage
            self._cost += cost
            self._turns += 1
        for msg in messages:
            self._bus.publish(
                MnesisEvent.MESSAGE_CREATED,
                {
                    "session_id": self.id,
                    "message_id": msg.id,
                    "role": msg.role,
                    "token_count": msg.token_count,
                    "status": str(msg.status),
                },
            )

    async def _append_user(self, parts: list[MessagePart]) -> str:
        message = self._new_message(new_id("msg"), "user", parts, time.time())
        outcome = await self._store.append(self.id, (message,))
        await self._absorb(outcome, (message,))
        return message.id

    async def _model_step(
        self,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | dict[str, Any] | None,
        on_part: OnPart | None,
        system_prompt: str | None,
        turn: _Turn,
    ) -> _Step:
        prompt = self._prompt(system_prompt)
        messages = self._window.messages(prompt)
        if needs_cache_breakpoints(self.model):
            messages = with_cache_breakpoints(messages)
        request = LLMRequest(
            model=self.model,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice if tools else None,
            max_tokens=self._limits.max_output_tokens,
        )
        acc = ResponseAccumulator()
        message_id = new_id("msg")
        try:
            async for chunk in stream_with_retry(
                self._provider, request, self._config.session.retry, self._on_retry
            ):
                acc.add(chunk)
                if chunk.text and on_part is not None and turn.callback_error is None:
                    try:
                        outcome = on_part(TextPart(text=chunk.text))
                        if inspect.isawaitable(outcome):
                            await outcome
                    except Exception as exc:  # the consumer failed; the turn goes on
                        turn.callback_error = exc
            if not acc.text and not acc.has_tool_calls:
                # Some servers end a failed stream (overflow, crash) with nothing at all.
                raise LLMPermanentError(
                    f"the provider returned an empty response (finish_reason={acc.finish_reason})"
                )
        except BaseException as exc:
            error = (
                exc
                if isinstance(exc, asyncio.CancelledError)
                else as_llm_error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            )
            await asyncio.shield(self._persist_failed(message_id, acc, error))
            if isinstance(exc, LLMError | asyncio.CancelledError) or not isinstance(exc, Exception):
                raise
            raise error from exc
        return await self._persist_reply(message_id, acc, request, turn.hard_result)

    async def _persist_failed(
        self, message_id: str, acc: ResponseAccumulator, error: BaseException
    ) -> None:
        partial: list[MessagePart] = [TextPart(text=acc.text)] if acc.text else []
        reason = "cancelled" if isinstance(error, asyncio.CancelledError) else str(error)
        message = self._new_message(
            message_id,
            "assistant",
            partial,
            time.time(),
            status=MessageStatus.FAILED,
            finish_reason=FinishReason.ERROR,
            error=f"{type(error).__name__}: {reason}"[:4000],
        )
        outcome = await self._store.append(self.id, (message,))
        await self._absorb(outcome, (message,))

    async def _persist_reply(
        self,
        message_id: str,
        acc: ResponseAccumulator,
        request: LLMRequest,
        hard_result: CompactionResult | None,
    ) -> _Step:
        calls = acc.tool_parts(id_prefix=f"call_{message_id}")
        text = acc.text
        parts: list[MessagePart] = [TextPart(text=text)] if text or not calls else []
        parts.extend(calls)
        finish = FinishReason.TOOL_CALLS if calls else (acc.finish_reason or FinishReason.STOP)
        message = self._new_message(
            message_id, "assistant", parts, time.time(), finish_reason=str(finish)
        )
        usage = acc.usage or TokenUsage(
            input=self._system_tokens(None) + self._window.token_count,
            output=message.token_count,
        )
        # Cost comes from the provider's own counts only; an estimate is not priced.
        if acc.cost is not None:
            cost = acc.cost
        else:
            cost = self._limits.cost(usage) if acc.usage is not None else 0.0
        message = NewMessage(**{**_fields(message), "tokens": usage, "cost": cost})
        snapshot = self._snapshot(
            extra_tokens=message.token_count + MESSAGE_OVERHEAD, hard_result=hard_result
        )
        outcome = await self._store.append(
            self.id, (message,), usage=usage, cost=cost, snapshot=snapshot
        )
        await self._absorb(outcome, (message,), usage, cost)
        doom = self._check_doom(message_id, calls)
        return _Step(message_id, text, str(finish), usage, cost, calls, doom)

    def _on_retry(self, attempt: int, delay: float, error: LLMError) -> None:
        self._bus.publish(
            MnesisEvent.LLM_RETRY,
            {
                "session_id": self.id,
                "model": self.model,
                "attempt": attempt,
                "max_retries": self._config.session.retry.max_retries,
                "delay_seconds": delay,
                "error": f"{type(error).__name__}: {error}"[:500],
            },
        )

    def _check_doom(self, message_id: str, calls: list[ToolPart]) -> bool:
        """True when the last ``doom_loop_threshold`` tool calls are identical."""
        if not calls:
            return False
        threshold = self._config.session.doom_loop_threshold
        recent = self._window.recent_tool_calls(threshold)
        if len(recent) < threshold or len({tool_signature(c) for c in recent}) != 1:
            return False
        self._bus.publish(
            MnesisEvent.DOOM_LOOP_DETECTED,
            {
                "session_id": self.id,
                "message_id": message_id,
                "tool_name": calls[-1].tool_name,
                "repeat_count": threshold,
            },
        )
        return True

    async def _run_tools(self, step: _Step, handlers: dict[str, ToolHandler]) -> None:
        results = []
        for call in step.tool_calls:
            output, error = await _invoke(handlers[call.tool_name], call)
            text = output if output is not None else f"Error: {error}"
            results.append(
                ToolResult(
                    call.tool_call_id,
                    output,
                    error,
                    self._estimator.estimate(text) + MESSAGE_OVERHEAD,
                )
            )
        await self._fill(tuple(results))

    async def _refuse_repeated_calls(self, step: _Step, handlers: dict[str, ToolHandler]) -> None:
        """A doom loop stops the tool loop; the calls it did not run get an error
        result, so the model sees why on its next turn."""
        threshold = self._config.session.doom_loop_threshold
        error = (
            f"not run: the same call was repeated {threshold} times in a row; "
            "try something different"
        )
        tokens = self._estimator.estimate(f"Error: {error}") + MESSAGE_OVERHEAD
        results = tuple(
            ToolResult(call.tool_call_id, None, error, tokens)
            for call in step.tool_calls
            if call.tool_name in handlers
        )
        if results:
            await self._fill(results)

    async def _fill(self, results: tuple[ToolResult, ...]) -> None:
        outcome = await self._store.fill_tool_results(self.id, results)
        if outcome.version_before != self._version:
            await self._reload()
            return
        by_id = {r.tool_call_id: r for r in results}
        for message_id in outcome.message_ids:
            entry = self._window.get(message_id)
            if entry is None:
                continue
            parts, tokens = [], []
            for part, count in zip(entry.parts, entry.part_tokens, strict=True):
                result = by_id.get(part.tool_call_id) if isinstance(part, ToolPart) else None
                if isinstance(part, ToolPart) and result is not None:
                    part = part.model_copy(
                        update={
                            "output": result.output,
                            "error_message": result.error,
                            "status": ToolStatus.ERROR if result.error else ToolStatus.COMPLETED,
                        }
                    )
                    count += result.token_count
                parts.append(part)
                tokens.append(count)
            self._window.replace(
                ContextEntry(entry.kind, entry.ref_id, entry.role, tuple(parts), tuple(tokens))
            )
        self._version = outcome.version_after


# -- helpers ------------------------------------------------------------------


def _fields(message: NewMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in NewMessage.__dataclass_fields__}


def _entry(message: NewMessage) -> ContextEntry:
    return ContextEntry(
        "message",
        message.id,
        message.role,
        tuple(p.part for p in message.parts),
        tuple(p.token_count + p.result_token_count for p in message.parts),
    )


def _copy_message(message: dict[str, Any]) -> dict[str, Any]:
    copy = dict(message)
    if "tool_calls" in copy:
        copy["tool_calls"] = [
            {**call, "function": dict(call["function"])} for call in copy["tool_calls"]
        ]
    return copy


def _coerce_parts(value: str | list[MessagePart], what: str) -> list[MessagePart]:
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


def _user_parts(message: str | list[MessagePart]) -> list[MessagePart]:
    parts = _coerce_parts(message, "message")
    if any(isinstance(p, ToolPart) for p in parts):
        raise InvalidInputError("a user message cannot contain tool calls (ToolPart)")
    if not parts or all(isinstance(p, TextPart) and not p.text.strip() for p in parts):
        raise InvalidInputError("message must not be empty")
    return parts


def _assistant_parts(message: str | list[MessagePart]) -> list[MessagePart]:
    parts = _coerce_parts(message, "assistant_response")
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


def _validate_tools(
    tools: list[Any] | None, handlers: dict[str, ToolHandler] | None
) -> list[dict[str, Any]] | None:
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


async def _invoke(handler: ToolHandler, call: ToolPart) -> tuple[str | None, str | None]:
    """Run a tool handler; its failures become error results fed back to the model."""
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


def _turn_result(
    turn: _Turn, user_id: str, triggered: bool, hard: CompactionResult | None
) -> TurnResult:
    last = turn.steps[-1]
    usage = turn.steps[0].usage
    for step in turn.steps[1:]:
        usage = usage + step.usage
    return TurnResult(
        message_id=last.message_id,
        text=last.text,
        finish_reason=last.finish_reason,
        tokens=usage,
        cost=sum(s.cost for s in turn.steps),
        doom_loop_detected=any(s.doom_loop for s in turn.steps),
        tool_calls=last.tool_calls,
        user_message_id=user_id,
        steps=len(turn.steps),
        compaction_triggered=triggered,
        compaction_result=hard,
    )


__all__ = ["DEFAULT_SYSTEM_PROMPT", "MnesisSession"]
