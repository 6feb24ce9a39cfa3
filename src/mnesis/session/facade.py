"""The session facade: the public verbs of one conversation, delegating to its parts.

A :class:`MnesisSession` builds its parts around one shared
:class:`~mnesis.session.core.SessionCore` and serialises turns with one lock;
the work happens in the parts: opening (:mod:`~mnesis.session.opening`), the
live context (:mod:`~mnesis.session.live_context`), the turn and its model
calls (:mod:`~mnesis.session.turn`), streaming
(:mod:`~mnesis.session.streaming`), the tool loop (:mod:`~mnesis.session.tools`),
compaction scheduling (:mod:`~mnesis.session.compaction`), input checks
(:mod:`~mnesis.session.inputs`), reads of the stored history
(:mod:`~mnesis.session.history`), embedding (:mod:`~mnesis.session.embedding`)
and erasure (:mod:`~mnesis.session.erasure`).
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from mnesis.errors import SessionClosedError
from mnesis.events.bus import EventBus, Handler, MnesisEvent
from mnesis.files import LargeFileHandler
from mnesis.llm import LLMProvider
from mnesis.llm.limits import ModelLimits
from mnesis.models.config import MnesisConfig
from mnesis.models.info import SessionInfo
from mnesis.models.message import MessagePart, TokenUsage
from mnesis.models.results import (
    CompactionResult,
    ContextBreakdown,
    RecordResult,
    TextDelta,
    TurnComplete,
    TurnResult,
)
from mnesis.session import erasure, inputs
from mnesis.session.compaction import CompactionScheduler
from mnesis.session.core import SessionCore
from mnesis.session.embedding import SessionEmbedding
from mnesis.session.history import StoredHistory
from mnesis.session.live_context import copy_chat_message
from mnesis.session.opening import SessionOpener, create_core, load_core, stored_sessions
from mnesis.session.streaming import DetachedTurns, stream_turn
from mnesis.session.tools import ToolHandler, ToolLoop
from mnesis.session.turn import OnPart, TurnRequest, TurnRunner
from mnesis.session.writer import SessionWriter
from mnesis.store import release_store

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
T = TypeVar("T")


class MnesisSession(StoredHistory):
    """One persistent conversation with a model. Create with :meth:`create`,
    :meth:`open` or :meth:`load`; never construct directly."""

    def __init__(self, core: SessionCore) -> None:
        super().__init__(core.store, core.id, core.record.turn_count)
        self._core = core
        self._live = core.live
        self._files = LargeFileHandler(
            core.config.file, estimator=core.counter.estimator, store=core.store
        )
        self._compaction = CompactionScheduler(core)
        writer = SessionWriter(core, self._compaction)
        writer.snapshots = self._turn_log.recent  # the turns after those stored at load
        self._writer = writer
        self._tools = ToolLoop(core, self._recall, writer)
        self._turns = TurnRunner(core, writer, self._tools, self._compaction)
        self._detached = DetachedTurns()
        self._turn_lock = asyncio.Lock()
        self._closed = False
        # Its embedder was checked when the core was built (create_core/load_core).
        self._embedding = SessionEmbedding(core.store, core.id, core.config, core.bus)
        self._recall.embedder = self._embedding.embedder
        self._hint_words_only = self._embedding.hint_words_only

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
        db_path: str | os.PathLike[str] | None = None,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        session_id: str | None = None,
        pool: object | None = None,
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
            pool: Accepted for mnesis 0.4.0 code and ignored: sessions on one
                database already share one connection per process.
        """
        core = await create_core(
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
        session = cls(core)
        core.bus.publish(
            MnesisEvent.SESSION_CREATED,
            {"session_id": core.id, "model": model, "agent": agent, "parent_id": parent_id},
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
        db_path: str | os.PathLike[str] | None = None,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        session_id: str | None = None,
        pool: object | None = None,
    ) -> SessionOpener[MnesisSession]:
        """Create a session for ``async with``; it is closed when the block exits."""
        return SessionOpener(
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
        db_path: str | os.PathLike[str] | None = None,
        *,
        provider: LLMProvider | None = None,
        event_bus: EventBus | None = None,
        pool: object | None = None,
    ) -> MnesisSession:
        """Resume a stored session: model, system prompt, config and history.

        ``pool`` is accepted for mnesis 0.4.0 code and ignored.

        Raises:
            SessionNotFoundError: No session with that id in the store.
        """
        # The stored turns' snapshots are not read: history() reads them when first asked.
        return cls(await load_core(session_id, config, db_path, provider, event_bus))

    @classmethod
    async def list_sessions(
        cls, db_path: str | None = None, config: MnesisConfig | None = None
    ) -> list[SessionInfo]:
        """Every stored session in the database, newest first."""
        return await stored_sessions(db_path, config)

    async def close(self, *, abort_compaction: bool = False) -> None:
        """Finish in-flight turns (streams abandoned by their consumer included),
        then release the store. Idempotent; later turns raise SessionClosedError."""
        if self._closed:
            return
        self._closed = True
        self._compaction.stop_starting()
        await self._detached.wait()
        async with self._turn_lock:
            pass
        await self._compaction.finish(abort=abort_compaction)
        self._core.bus.publish(MnesisEvent.SESSION_CLOSED, {"session_id": self.id})
        await self._core.bus.drain()
        await self._embedding.close()
        await release_store(self._store)

    async def erase(self) -> None:
        """Delete this session and everything stored for it, then close it.

        For data that must go (a privacy request): unlike every other write
        this removes rows, and nothing brings them back. A background
        compaction pass is cancelled first; sessions whose parent this was keep
        their own rows. ``MnesisSession.create(session_id=...)`` may reuse the id.

        Raises:
            MnesisStoreError: The store cannot erase (not a mnesis backend).
        """
        self._check_open()
        await erasure.erase_session(
            self._store, self.id, self._compaction, self._detached, self._turn_lock
        )
        await self.close(abort_compaction=True)

    async def erase_latest_message(self, message_id: str) -> None:
        """Delete the session's latest message, for data that must go; the next
        context no longer holds it. Only a message still verbatim at the end of
        the context can be erased alone (else :meth:`erase` the session).

        Raises:
            InvalidInputError: Not the latest message, summarised, or pinned.
            MnesisStoreError: The store cannot erase (not a mnesis backend).
        """
        self._check_open()
        await erasure.erase_latest_message(
            self._store, self.id, message_id, self._compaction, self._turn_lock, self._live
        )

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
                f"MnesisSession {self._core.id} was never closed; use 'async with' or "
                "'await session.close()'",
                ResourceWarning,
                stacklevel=2,
            )

    # -- properties -------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def model(self) -> str:
        return self._core.model

    @property
    def system_prompt(self) -> str:
        return self._core.record.system_prompt

    @property
    def config(self) -> MnesisConfig:
        return self._core.config

    @property
    def db_url(self) -> str:
        """Where the session is stored, as ``db_path=`` takes it: a SQLite file's
        path or a PostgreSQL URL."""
        return self._store.url.removeprefix("sqlite:///")

    @property
    def limits(self) -> ModelLimits:
        return self._core.limits

    @property
    def usable_tokens(self) -> int:
        """The context budget: the model's window less its output reserve."""
        return self._core.usable_tokens

    @property
    def file_handler(self) -> LargeFileHandler:
        """The handler ``send(files=...)`` uses (the session's store and ``FileConfig``)."""
        return self._files

    @property
    def event_bus(self) -> EventBus:
        return self._core.bus

    @property
    def token_usage(self) -> TokenUsage:
        """Tokens used by the session's model calls — every completed turn and
        every compaction summary — across restarts."""
        return self._core.totals.usage

    @property
    def cost(self) -> float:
        """Accumulated cost in USD (0.0 when the model has no known prices)."""
        return self._core.totals.cost

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def compaction_in_progress(self) -> bool:
        """True while a background compaction pass runs."""
        return self._compaction.running

    @property
    def last_compaction(self) -> CompactionResult | None:
        """The result of the most recent compaction pass of this session object."""
        return self._compaction.last_result

    def subscribe(self, event: MnesisEvent | None, handler: Handler) -> None:
        """Call ``handler(event, payload)`` whenever ``event`` is published."""
        self._core.bus.subscribe(event, handler)

    def _agent(self) -> str:
        return self._core.record.agent

    async def _write_turn(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run a turn's write under the turn lock, then :meth:`_after_write`."""
        async with self._turn_lock:
            self._check_open(allow_closing=True)
            done = await write()
            await self._after_write()
        return done

    async def _after_write(self) -> None:
        """Keep :meth:`history`'s list level with the turns the store counted,
        and tell subscribers the session's counters moved."""
        totals = self._core.totals
        if totals.turns != self._turn_log.count:  # another writer's turns too
            await self._turn_log.catch_up()
        self._core.bus.publish(
            MnesisEvent.SESSION_UPDATED,
            {
                "session_id": self.id,
                "turn_count": totals.turns,
                "total_tokens": totals.usage.effective_total(),
                "cost": totals.cost,
            },
        )

    # -- reads ------------------------------------------------------------------

    async def context_for_next_turn(
        self, system_prompt: str | None = None, *, include_system: bool = False
    ) -> list[dict[str, Any]]:
        """The conversation the next model call would receive, for your own SDK.

        Summaries, messages and tool results, compacted to fit; the system
        prompt is yours to pass (``[{"role": "system", ...}, *messages]``, or
        Anthropic's ``system=``). With ``include_system=True`` the list starts
        with the system message (``system_prompt``, else the session's).
        """
        self._check_open()
        prompt = self._core.prompt(system_prompt) if include_system else None
        async with self._turn_lock:
            await self._live.reload_if_changed_elsewhere()
            await self._compaction.wait_until_under_hard_limit()
            messages = self._live.window.messages(prompt)
        return [copy_chat_message(m) for m in messages]

    async def context_breakdown(self) -> ContextBreakdown:
        """Where the tokens of the current context go (system, summaries, messages, tools)."""
        self._check_open()
        await self._live.reload_if_changed_elsewhere()
        return self._live.window.breakdown(self._core.system_tokens())

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
            max_tool_steps: Model calls allowed in this turn, the first included
                (default ``config.session.max_tool_steps``); 1 runs no tool,
                0 or less is refused.
            tool_choice: Passed to the provider (``"auto"``, ``"required"`` or a
                specific function); applies to the first model call of the turn.
            pin: Keep this user message verbatim in every future context.
            memory_tools: Offer the model ``lcm_grep``, ``lcm_describe``, ``lcm_expand``
                and ``lcm_search``, and run its calls to them in the tool loop.
            files: Paths to attach: small files inline, large ones as references.

        Raises:
            InvalidInputError: A malformed argument, or a message that with the
                system prompt exceeds the usable context (attach such text as a
                file instead); nothing was sent or stored.
        """
        self._check_open()
        max_steps = inputs.tool_steps_allowed(
            max_tool_steps, self._core.config.session.max_tool_steps
        )
        parts = inputs.user_parts(message) + await inputs.file_parts(files, self._files)
        inputs.check_fits_window(
            parts,
            self._core.counter,
            system_prompt=self._core.prompt(system_prompt),
            usable=self._core.usable_tokens,
        )
        tool_list, handlers = self._tools.offer(tools, tool_handlers, memory_tools=memory_tools)
        request = TurnRequest(
            parts=parts,
            tools=tool_list,
            handlers=handlers or {},
            max_steps=max_steps,
            tool_choice=tool_choice,
            on_part=on_part,
            system_prompt=system_prompt,
            pin=pin,
        )
        turn = await self._write_turn(lambda: self._turns.run(request))
        return turn.result()

    def stream(
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
        return stream_turn(
            lambda on_part: self.send(
                message,
                tools=tools,
                on_part=on_part,
                system_prompt=system_prompt,
                tool_handlers=tool_handlers,
                max_tool_steps=max_tool_steps,
                tool_choice=tool_choice,
                memory_tools=memory_tools,
                files=files,
            ),
            self._detached,
            self._check_open,
        )

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
        inputs.check_tokens(tokens)
        inputs.check_finish_reason(finish_reason)
        user_parts = inputs.user_parts(user_message) + await inputs.file_parts(files, self._files)
        assistant_parts = inputs.assistant_parts(assistant_response)
        return await self._write_turn(
            lambda: self._turns.record(
                user_parts, assistant_parts, tokens=tokens, finish_reason=finish_reason
            )
        )

    async def record_user(
        self,
        message: str | list[MessagePart],
        *,
        files: Sequence[str | os.PathLike[str]] | None = None,
    ) -> str:
        """Store a user message alone, for an SDK that answers it in several steps
        (an agent loop); store each reply with :meth:`record_reply`. Returns its id."""
        self._check_open()
        parts = inputs.user_parts(message) + await inputs.file_parts(files, self._files)
        return await self._write_turn(lambda: self._turns.record_user(parts))

    async def record_reply(
        self,
        assistant_response: str | list[MessagePart],
        *,
        tokens: TokenUsage | None = None,
        finish_reason: str = "stop",
    ) -> RecordResult:
        """Store one reply of your model that follows the stored conversation
        (after :meth:`record_user`, a tool result, or another reply).

        As :meth:`record` does for a whole turn: usage estimated without
        ``tokens``, doom loops detected, compaction started past the soft
        threshold. The result's ``user_message_id`` is ``""``.
        """
        self._check_open()
        inputs.check_tokens(tokens)
        inputs.check_finish_reason(finish_reason)
        parts = inputs.assistant_parts(assistant_response)
        return await self._write_turn(
            lambda: self._turns.record_reply(parts, tokens=tokens, finish_reason=finish_reason)
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
        prepared = inputs.tool_results(results, self._core.counter)
        async with self._turn_lock:
            self._check_open(allow_closing=True)
            await self._writer.fill_tool_results(prepared)

    # -- compaction and pins ----------------------------------------------------

    async def compact(self) -> CompactionResult:
        """Run a compaction pass now (after any running one) and return its result."""
        self._check_open()
        await self._compaction.wait()
        async with self._turn_lock:
            result = await self._compaction.run_now()
            await self._after_write()
        return result

    async def wait_for_embeddings(self) -> None:
        """Wait until the background worker has embedded everything this session
        stored (returns at once without an embedder)."""
        self._check_open()
        await self._embedding.drain()

    async def wait_for_compaction(self) -> CompactionResult | None:
        """Wait for a running background pass; its result (None if none ever ran)."""
        self._check_open()
        await self._compaction.wait()
        return self._compaction.last_result

    async def pin(self, message_id: str) -> None:
        """Keep a message verbatim in every future context.

        Pinned tokens count against the budget: pinning more than half of the
        usable context is refused with ``InvalidInputError``.
        """
        self._check_open()
        async with self._turn_lock:
            await self._live.reload_if_expected()
            await self._live.pin(message_id, usable_tokens=self._core.usable_tokens)

    def _check_open(self, *, allow_closing: bool = False) -> None:
        if self._closed and not (allow_closing and self._turn_lock.locked()):
            raise SessionClosedError(
                f"session {self.id} is closed; use MnesisSession.load({self.id!r}) to resume it"
            )
