"""When a session compacts: in the background past the soft limit, blocking past the hard one.

The engine (:mod:`mnesis.compaction`) knows how to compact; this decides when.
After a turn, a context past the soft threshold starts a background pass that
runs while the caller goes on. Before a model call, a context past the usable
budget waits for that pass, or runs one, so no request is sent that cannot fit:
when no pass can make room in time, the turn is refused before any request.
A summariser's tokens and cost count toward the session's totals.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mnesis.compaction import CompactionEngine
from mnesis.errors import ContextLimitError
from mnesis.models.results import CompactionResult
from mnesis.session.core import SessionCore

logger = logging.getLogger("mnesis.session")

_RETRY_PAUSE = 0.2  # seconds between hard passes while another process compacts


class CompactionScheduler:
    """Starts, waits for and counts one session's compaction passes."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core
        self._engine = CompactionEngine(
            session_id=core.id,
            session_model=core.model,
            store=core.store,
            provider=core.provider,
            config=core.config,
            bus=core.bus,
        )
        self._task: asyncio.Task[None] | None = None
        self._accepting = True
        self.last_result: CompactionResult | None = None

    @property
    def running(self) -> bool:
        """True while a background pass runs."""
        return self._task is not None and not self._task.done()

    def would_start(self, context_tokens: int) -> bool:
        """Whether a context of this size would start a background pass now."""
        core = self._core
        return (
            core.config.compaction.auto
            and not self.running
            and context_tokens > self._engine.soft_limit(core.usable_tokens)
        )

    def start_if_past_soft_limit(self) -> bool:
        """Start a background pass when the context is past the soft threshold."""
        if not self._accepting or not self.would_start(self._core.context_tokens()):
            return False
        self._task = asyncio.get_running_loop().create_task(self._run_in_background())
        return True

    async def _run_in_background(self) -> None:
        core = self._core
        try:
            self.last_result = await self._engine.run_pass(
                usable=core.usable_tokens, system_tokens=core.system_tokens()
            )
            await self._count_usage(self.last_result)
        except Exception:
            logger.exception("background compaction of session %s failed", core.id)
        finally:
            core.live.expect_reload()

    async def run_now(self) -> CompactionResult:
        """A forced pass (``session.compact()``); the caller holds the turn lock."""
        core = self._core
        result = await self._engine.run_pass(
            usable=core.usable_tokens,
            system_tokens=core.system_tokens(),
            force=True,
            reason="manual",
        )
        self.last_result = result
        await self._count_usage(result)
        await core.live.reload()
        return result

    async def wait(self) -> None:
        """Wait for a running background pass (shielded: cancelling the waiter spares it)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def wait_until_under_hard_limit(self) -> CompactionResult | None:
        """Past the usable context, wait for (or run) a pass before calling a model.

        Returns:
            The pass that made room, or None when there was room already.
        """
        core = self._core
        if not core.config.compaction.auto or not self._over_hard_limit():
            return None
        await self.wait()
        await core.live.reload_if_expected()
        if not self._over_hard_limit():
            return self.last_result
        deadline = time.monotonic() + core.config.compaction.summary_timeout * 2
        result = await self._run_hard_pass()
        # A skipped pass means another process is compacting: let it finish, but
        # go on rather than hang if it never does.
        while result.skipped and self._over_hard_limit() and time.monotonic() <= deadline:
            await asyncio.sleep(_RETRY_PAUSE)
            result = await self._run_hard_pass()
        self.last_result = result
        return result

    async def make_room_for_request(self) -> CompactionResult | None:
        """Before a model call: get the context under the usable budget, or refuse.

        Waits as :meth:`wait_until_under_hard_limit` does; if another process
        holds the compaction lock past that wait, truncates deterministically
        (level 3, no model) without it. A request past the budget is never sent.

        Returns:
            The pass that made room, or None when there was room already.

        Raises:
            ContextLimitError: The context is still past the budget (compaction
                is off, or nothing left to summarise: pins, the current turn).
        """
        result = await self.wait_until_under_hard_limit()
        if result is not None and result.skipped and self._over_hard_limit():
            result = await self._run_hard_pass(deterministic=True)
            self.last_result = result
        if self._over_hard_limit():
            raise ContextLimitError(self._why_no_room())
        return result

    def _why_no_room(self) -> str:
        core = self._core
        tokens, usable = core.context_tokens(), core.usable_tokens
        if not core.config.compaction.auto:
            return (
                f"the context holds {tokens:,} tokens, past the usable budget of {usable:,}, "
                "and automatic compaction is off (compaction.auto): call compact() or "
                "raise the budget; no request was sent"
            )
        return (
            f"compaction could not bring the context ({tokens:,} tokens) under the usable "
            f"budget of {usable:,}: what is left is pinned or part of the current turn; "
            "no request was sent"
        )

    def _over_hard_limit(self) -> bool:
        return self._core.context_tokens() > self._core.usable_tokens

    async def _run_hard_pass(self, *, deterministic: bool = False) -> CompactionResult:
        core = self._core
        result = await self._engine.run_pass(
            usable=core.usable_tokens,
            system_tokens=core.system_tokens(),
            reason="hard",
            deterministic=deterministic,
        )
        await self._count_usage(result)
        await core.live.reload()
        return result

    async def _count_usage(self, result: CompactionResult) -> None:
        """The summariser's tokens and cost count toward the session's totals."""
        if not result.tokens.effective_total():
            return
        core = self._core
        # Usage only, no messages: the context view (and its version) stays as it is.
        core.totals.follow(
            await core.store.append(core.id, (), usage=result.tokens, cost=result.cost)
        )

    def stop_starting(self) -> None:
        """Start no more background passes (the session is closing)."""
        self._accepting = False

    async def finish(self, *, abort: bool) -> None:
        """Let a running pass end, or cancel it with ``abort``, and wait for it."""
        task = self._task
        if task is not None and not task.done():
            if abort:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
