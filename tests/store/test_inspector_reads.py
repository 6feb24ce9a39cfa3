"""The session outline (``SessionOutlines.session_outline``), on every backend.

The web inspector lays out a long session and rebuilds any past turn's
context from the outline alone, so it must carry every message's numbers, each
tool call's result and prune times, each turn's snapshot with its append time,
the summaries with their sources, and the pins, exactly as stored.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mnesis.errors import SessionNotFoundError
from mnesis.models.message import MessageStatus
from mnesis.store import Store
from mnesis.store.base import NewSummary, SessionOutlines


async def test_every_backend_outlines_a_session(store: Store) -> None:
    assert isinstance(store, SessionOutlines)


async def test_the_outline_carries_messages_tools_turns_summaries_and_pins(
    store: Store, build: Any
) -> None:
    assert isinstance(store, SessionOutlines)
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("other"))
    await store.append("other", (build.message("x1", text="another session"),))
    start = time.time()
    await store.append(
        "s1",
        (
            build.message("u1", build.text("hello", 6)),
            build.message(
                "a1", build.text("let me look", 4), build.tool_call("c1"), role="assistant"
            ),
        ),
        snapshot=build.snapshot(1, total=40),
    )
    await store.fill_tool_results("s1", (build.result("c1", "found it", token_count=30),))
    await store.append(
        "s1",
        (
            build.message("u2"),
            build.message("f2", role="assistant", status=MessageStatus.FAILED, error="boom"),
            build.message("a2", role="assistant"),
        ),
        snapshot=build.snapshot(2, total=70),
    )
    await store.prune_tool_outputs("s1", ("c1",))
    await store.pin("s1", "a2")
    summary = NewSummary(
        id="S1",
        kind="leaf",
        depth=0,
        level_used=1,
        text="they looked",
        token_count=9,
        sources=("u1", "a1"),
        first_seq=1,
        last_seq=2,
        message_count=2,
        created_at=1_700_000_500.0,
    )
    await store.commit_summary("s1", summary)
    end = time.time()

    outline = await store.session_outline("s1")

    assert [(m.id, m.seq, m.role, m.status) for m in outline.messages] == [
        ("u1", 1, "user", "complete"),
        ("a1", 2, "assistant", "complete"),
        ("u2", 3, "user", "complete"),
        ("f2", 4, "assistant", "failed"),
        ("a2", 5, "assistant", "complete"),
    ]
    assert [m.token_count for m in outline.messages[:2]] == [6, 4 + 7 + 30]  # the result counts
    assert outline.messages[0].created_at == pytest.approx(1_700_000_100.0)
    (tool,) = outline.tools
    assert (tool.message_id, tool.tool_call_id, tool.call_tokens, tool.result_tokens) == (
        "a1",
        "c1",
        7,
        30,
    )
    assert tool.has_result and tool.completed_at is not None and tool.pruned_at is not None
    assert start - 1 <= tool.completed_at <= tool.pruned_at <= end + 1
    assert [t.snapshot.turn_index for t in outline.turns] == [1, 2]
    assert [t.snapshot.context_tokens.total for t in outline.turns] == [40, 70]
    assert start - 1 <= outline.turns[0].created_at <= outline.turns[1].created_at <= end + 1
    (node,) = outline.summaries
    assert (node.id, node.kind, node.first_seq, node.last_seq, node.text) == (
        "S1",
        "leaf",
        1,
        2,
        "they looked",
    )
    assert node.created_at == pytest.approx(1_700_000_500.0)
    assert outline.sources == {"S1": ("u1", "a1")}
    assert list(outline.pins) == ["a2"] and start - 1 <= outline.pins["a2"] <= end + 1


async def test_a_pending_tool_call_is_outlined_without_a_result(store: Store, build: Any) -> None:
    assert isinstance(store, SessionOutlines)
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("a1", build.tool_call("c1"), role="assistant"),))
    (tool,) = (await store.session_outline("s1")).tools
    assert not tool.has_result and tool.completed_at is None and tool.result_tokens == 0


async def test_an_empty_session_has_an_empty_outline(store: Store, build: Any) -> None:
    assert isinstance(store, SessionOutlines)
    await store.create_session(build.session("s1"))
    outline = await store.session_outline("s1")
    assert (outline.messages, outline.tools, outline.turns, outline.summaries) == ([], [], [], [])
    assert outline.sources == {} and outline.pins == {}


async def test_outlining_an_unknown_session_is_an_error(store: Store) -> None:
    assert isinstance(store, SessionOutlines)
    with pytest.raises(SessionNotFoundError):
        await store.session_outline("nope")
