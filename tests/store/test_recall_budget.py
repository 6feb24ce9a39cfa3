"""grep over a real store of each backend: the regex budget holds and the loop stays free."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from mnesis.errors import InvalidInputError, MnesisError
from mnesis.recall import Recall
from mnesis.store import Store

CATASTROPHIC = r"(.*a){20}$"  # backtracks exponentially on a run of a's without a final one


async def _session_of(store: Store, build: Any, count: int, text: str) -> None:
    await store.create_session(build.session("s1"))
    for start in range(0, count, 50):
        batch = tuple(
            build.message(f"m{n}", text=f"{text} {n}", role="user" if n % 2 else "assistant")
            for n in range(start, min(start + 50, count))
        )
        await store.append("s1", batch)


async def _max_tick_gap(work: Any) -> tuple[Any, float]:
    """Run ``work`` while a 10 ms ticker runs; its result and the longest gap between ticks."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        result = await work
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ticks.append(time.monotonic())
    return result, max(b - a for a, b in itertools.pairwise(ticks))


async def test_a_catastrophic_regex_stops_at_the_budget_and_the_loop_keeps_ticking(
    store: Store, build: Any
) -> None:
    await _session_of(store, build, 202, "a" * 200 + "b")
    recall = Recall(store, "s1", regex_budget=1.0)

    started = time.monotonic()
    result, gap = await _max_tick_gap(recall.grep(CATASTROPHIC, regex=True))
    elapsed = time.monotonic() - started

    assert result.complete is False
    assert elapsed < 1.0 + 1.5, f"the 1 s budget took {elapsed:.1f} s"
    assert gap < 0.5, f"the event loop stalled {gap:.2f} s"


async def test_a_plain_regex_over_the_whole_history_is_complete(store: Store, build: Any) -> None:
    await _session_of(store, build, 202, "plain words")
    recall = Recall(store, "s1", regex_budget=5.0)

    page = await recall.grep(r"words 1\d\d$", regex=True, limit=60)
    rest = await recall.grep(r"words 1\d\d$", regex=True, limit=60, offset=60)

    assert page.complete is True and rest.complete is True
    assert [m.message_id for m in page.matches] == [f"m{n}" for n in range(100, 160)]
    assert page.next_offset == 60
    assert [m.message_id for m in rest.matches] == [f"m{n}" for n in range(160, 200)]
    assert rest.next_offset is None


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"offset": 2**70}, "offset must be between 0 and"),
        ({"offset": -1}, "offset must be between 0 and"),
        ({"offset": 1.5}, "offset must be a whole number"),
        ({"limit": True}, "limit must be a whole number"),
        ({"limit": 10**30}, "limit must be between 1 and"),
    ],
)
async def test_out_of_range_pages_are_invalid_input_not_overflow(
    store: Store, build: Any, arguments: dict[str, Any], says: str
) -> None:
    await _session_of(store, build, 3, "hello")
    recall = Recall(store, "s1")

    for regex in (False, True):
        with pytest.raises(InvalidInputError, match=says) as err:
            await recall.grep("hello", regex=regex, **arguments)
        assert isinstance(err.value, MnesisError) and isinstance(err.value, ValueError)
