"""Streaming a turn: deltas live while the model writes, and no turn lost to its consumer.

The turn runs in its own task and hands its text chunks to a queue the
consumer reads. If the consumer stops early or is cancelled, the task goes on:
the turn completes, is persisted and counted, and ``close()`` waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from mnesis.models.message import MessagePart, TextPart
from mnesis.models.results import TextDelta, TurnComplete, TurnResult
from mnesis.session.turn import OnPart


class DetachedTurns:
    """Streamed turns running in their own tasks, so closing can wait for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, turn: Coroutine[Any, Any, TurnResult]) -> asyncio.Task[TurnResult]:
        """Run a turn in a task of its own."""
        task = asyncio.get_running_loop().create_task(turn)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self) -> None:
        """Wait until every running turn has ended, however it ends."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def stream_turn(
    send: Callable[[OnPart], Coroutine[Any, Any, TurnResult]],
    detached: DetachedTurns,
    check_open: Callable[[], None],
) -> AsyncIterator[TextDelta | TurnComplete]:
    """Yield ``TextDelta`` events as ``send(on_part)`` streams, then ``TurnComplete``."""
    check_open()
    queue: asyncio.Queue[TextDelta | None] = asyncio.Queue()

    def forward(part: MessagePart) -> None:
        if isinstance(part, TextPart) and part.text:
            queue.put_nowait(TextDelta(text=part.text))

    task = detached.start(send(forward))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    while (delta := await queue.get()) is not None:
        yield delta
    yield TurnComplete(result=task.result())
