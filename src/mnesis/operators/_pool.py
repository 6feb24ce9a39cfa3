"""A bounded worker pool that yields results in completion order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

R = TypeVar("R")


async def run_pool(
    items: Iterable[tuple[int, Any]],
    worker: Callable[[int, Any], Awaitable[R]],
    concurrency: int,
) -> AsyncIterator[R]:
    """Run ``worker(index, item)`` for each ``(index, item)`` pair with at most
    ``concurrency`` in flight; yield results as they finish.

    Items are pulled lazily, so a huge input does not become a huge task list.
    If the consumer stops early, the work still in flight is cancelled.
    """
    iterator = iter(items)
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    lock = asyncio.Lock()

    async def loop() -> None:
        while True:
            async with lock:
                try:
                    nxt = next(iterator, None)
                except Exception as exc:  # a bad input (e.g. a broken JSONL line)
                    queue.put_nowait((False, exc))
                    return
            if nxt is None:
                return
            try:
                queue.put_nowait((True, await worker(*nxt)))
            except Exception as exc:  # a worker bug must surface, not hang the consumer
                queue.put_nowait((False, exc))

    workers = [asyncio.create_task(loop()) for _ in range(max(1, concurrency))]
    done = asyncio.gather(*workers)
    done.add_done_callback(lambda _: queue.put_nowait((True, _END)))
    try:
        while True:
            ok, value = await queue.get()
            if value is _END:
                break
            if not ok:
                raise value
            yield value
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


_END = object()
