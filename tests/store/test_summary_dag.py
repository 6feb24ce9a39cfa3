"""The summary DAG contract, on every backend: commit, walk, prune, pin.

Each test runs once per backend (``conftest.BACKENDS``) through the protocol
only, so the shared algorithms are exercised on both drivers.
"""

from __future__ import annotations

from typing import Any

import pytest

from mnesis.errors import InvalidInputError, StaleContextError
from mnesis.store import Store
from mnesis.store.base import NewSummary


def leaf(summary_id: str, sources: tuple[str, ...], first: int, last: int) -> NewSummary:
    return NewSummary(
        id=summary_id,
        kind="leaf",
        depth=0,
        level_used=1,
        text=f"summary {summary_id}",
        token_count=9,
        sources=sources,
        first_seq=first,
        last_seq=last,
        message_count=len(sources),
        created_at=1_700_000_200.0,
    )


def condensed(
    summary_id: str, sources: tuple[str, ...], first: int, last: int, count: int
) -> NewSummary:
    return NewSummary(
        id=summary_id,
        kind="condensed",
        depth=1,
        level_used=1,
        text=f"summary {summary_id}",
        token_count=9,
        sources=sources,
        first_seq=first,
        last_seq=last,
        message_count=count,
        created_at=1_700_000_300.0,
    )


async def session_with(store: Store, build: Any, session_id: str, *ids: str) -> None:
    await store.create_session(build.session(session_id))
    await store.append(session_id, tuple(build.message(i) for i in ids))


async def test_a_summary_replaces_its_sources_and_can_be_walked(store: Store, build: Any) -> None:
    await session_with(store, build, "s1", "m1", "m2", "m3", "m4", "m5")
    outcome = await store.commit_summary("s1", leaf("L1", ("m2", "m3"), 2, 3))
    assert (outcome.version_before, outcome.version_after) == (1, 2)
    await store.commit_summary("s1", leaf("L2", ("m4",), 4, 4))
    await store.commit_summary("s1", condensed("C1", ("L1", "L2"), 2, 4, 3))

    version, entries = await store.context_entries("s1")
    assert version == 4
    assert [(e.kind, e.ref_id) for e in entries] == [
        ("message", "m1"),
        ("summary", "C1"),
        ("message", "m5"),
    ]
    assert await store.summary_sources("C1") == [("summary", "L1"), ("summary", "L2")]
    assert await store.summary_message_ids("C1") == ["m2", "m3", "m4"]
    assert await store.parent_of("m3") == "L1"
    assert await store.parent_of("L1") == "C1"
    assert await store.parent_of("m1") is None
    assert await store.covering_summaries("s1", ("m1", "m2", "m4")) == {"m2": "C1", "m4": "C1"}
    assert (await store.get_summary("C1")).message_count == 3
    assert await store.verify() == []


async def test_covering_summaries_only_answers_for_the_given_session(
    store: Store, build: Any
) -> None:
    await session_with(store, build, "s1", "a1", "a2")
    await session_with(store, build, "s2", "b1", "b2")
    await store.commit_summary("s1", leaf("LA", ("a1",), 1, 1))
    await store.commit_summary("s2", leaf("LB", ("b1",), 1, 1))

    assert await store.covering_summaries("s1", ("a1", "b1")) == {"a1": "LA"}
    assert await store.covering_summaries("s2", ("a1", "b1")) == {"b1": "LB"}
    assert await store.covering_summaries("s1", ()) == {}


async def test_messages_by_id_stay_within_their_session(store: Store, build: Any) -> None:
    await session_with(store, build, "s1", "a1", "a2", "a3")
    await session_with(store, build, "s2", "b1")

    found = await store.get_messages_by_id("s1", ("a3", "b1", "a1", "nope"))
    assert [m.id for m in found] == ["a1", "a3"]
    assert await store.get_messages_by_id("s1", ()) == []


async def test_a_stale_or_empty_summary_writes_nothing(store: Store, build: Any) -> None:
    await session_with(store, build, "s1", "m1", "m2", "m3")
    before = await store.context_entries("s1")

    with pytest.raises(StaleContextError):
        await store.commit_summary("s1", leaf("L1", ("m1", "m3"), 1, 3))  # not contiguous
    with pytest.raises(InvalidInputError):
        await store.commit_summary("s1", leaf("L2", (), 1, 1))
    with pytest.raises(KeyError):
        await store.get_summary("L1")
    assert await store.context_entries("s1") == before


async def test_pruning_tombstones_many_outputs_at_once(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1",
        (
            build.message("m1", build.tool_call("c1"), build.tool_call("c2"), role="assistant"),
            build.message("m2", build.tool_call("c3"), role="assistant"),
        ),
    )
    await store.fill_tool_results("s1", tuple(build.result(c) for c in ("c1", "c2", "c3")))

    first = await store.prune_tool_outputs("s1", ("c1", "c3", "unknown"))
    again = await store.prune_tool_outputs("s1", ("c1", "c3"))

    assert first.version_after == first.version_before + 1
    assert again.version_after == again.version_before  # nothing left to prune
    _, entries = await store.context_entries("s1")
    outputs = [getattr(p, "output", None) for e in entries for p in e.parts]
    assert outputs[1] == "ok"  # c2 untouched
    assert outputs[0] != "ok" and outputs[2] != "ok"


async def test_pins_once_and_only_verbatim_complete_messages(store: Store, build: Any) -> None:
    await session_with(store, build, "s1", "m1", "m2")
    await store.commit_summary("s1", leaf("L1", ("m1",), 1, 1))

    first = await store.pin("s1", "m2")
    again = await store.pin("s1", "m2")
    assert first.version_after == first.version_before + 1
    assert again.version_after == again.version_before
    assert await store.is_pinned("s1", "m2")
    assert not await store.is_pinned("s1", "m1")
    with pytest.raises(InvalidInputError, match="already summarised"):
        await store.pin("s1", "m1")
    with pytest.raises(InvalidInputError, match="no message"):
        await store.pin("s1", "nope")


async def test_map_runs_resume_and_refuse_other_work(store: Store) -> None:
    assert await store.start_map_run("r1", "llm_map", "fp") == {}
    await store.set_map_item("r1", 0, "done", '{"x": 1}')
    await store.set_map_item("r1", 1, "running")
    await store.set_map_item("r1", 1, "done", '{"x": 2}')

    assert await store.start_map_run("r1", "llm_map", "fp") == {0: "done", 1: "done"}
    assert await store.map_results("r1") == [(0, "done", '{"x": 1}'), (1, "done", '{"x": 2}')]
    with pytest.raises(InvalidInputError, match="different work"):
        await store.start_map_run("r1", "llm_map", "other")
