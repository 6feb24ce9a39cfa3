"""A small in-process event bus.

Publishing never fails because of a subscriber: sync handlers run inline and
their exceptions are logged; async handlers are scheduled as tasks that the
bus keeps referenced until they finish (and :meth:`EventBus.drain` awaits).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

logger = logging.getLogger("mnesis.events")


class MnesisEvent(StrEnum):
    """Every event mnesis publishes.

    ``SESSION_DELETED`` exists for mnesis 0.4.0 code that subscribes to it;
    mnesis never deletes a session, so it is not published.
    """

    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    SESSION_CLOSED = "session.closed"
    SESSION_DELETED = "session.deleted"
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    PART_CREATED = "part.created"
    PART_UPDATED = "part.updated"
    PRUNE_COMPLETED = "prune.completed"
    COMPACTION_TRIGGERED = "compaction.triggered"
    COMPACTION_COMPLETED = "compaction.completed"
    COMPACTION_FAILED = "compaction.failed"
    DOOM_LOOP_DETECTED = "doom_loop.detected"
    LLM_RETRY = "llm.retry"
    LLM_EMPTY_REPLY = "llm.empty_reply"
    MAP_STARTED = "map.started"
    MAP_ITEM_COMPLETED = "map.item_completed"
    MAP_COMPLETED = "map.completed"


Handler = Callable[[MnesisEvent, Any], Awaitable[None] | None]


class EventBus:
    """Subscribe handlers to events; publish typed payloads to them."""

    def __init__(self) -> None:
        self._handlers: dict[MnesisEvent | None, list[Handler]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def subscribe(self, event: MnesisEvent | None, handler: Handler) -> None:
        """Call ``handler(event, payload)`` on ``event`` (``None``: on every event)."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._handlers.setdefault(event, []).append(handler)

    def subscribe_all(self, handler: Handler) -> None:
        """Call ``handler(event, payload)`` on every event."""
        self.subscribe(None, handler)

    def unsubscribe(self, event: MnesisEvent | None, handler: Handler) -> None:
        """Remove a handler; unknown handlers are ignored."""
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def unsubscribe_all(self, handler: Handler) -> None:
        """Remove ``handler`` from every event and from the catch-all list."""
        for handlers in self._handlers.values():
            while handler in handlers:
                handlers.remove(handler)

    def publish(self, event: MnesisEvent, payload: Any) -> None:
        """Deliver ``payload`` to the handlers of ``event`` and to catch-all handlers."""
        for handler in (*self._handlers.get(event, ()), *self._handlers.get(None, ())):
            try:
                outcome = handler(event, payload)
            except Exception:
                logger.exception("event handler for %s raised", event.value)
                continue
            if inspect.isawaitable(outcome):
                self._schedule(event, outcome)

    def _schedule(self, event: MnesisEvent, awaitable: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception("async event handler for %s raised", event.value)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            # No loop is running (a sync caller): run the coroutine to completion here.
            asyncio.run(run())
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every scheduled async handler to finish."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
