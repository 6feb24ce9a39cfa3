"""The storage contract: behaviour every backend of :class:`mnesis.store.Store` must show.

Each test runs once per backend (see ``conftest.BACKENDS``). Tests use only the
protocol, except the tampering test, which needs raw access to the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from mnesis.errors import (
    InvalidInputError,
    MnesisError,
    MnesisStoreError,
    SessionNotFoundError,
    ToolResultError,
)
from mnesis.models.message import (
    FileRefPart,
    MessageStatus,
    MessageWithParts,
    TextPart,
    TokenUsage,
    ToolPart,
    ToolStatus,
)
from mnesis.models.results import CompactionResult, ContextBreakdown, TurnSnapshot
from mnesis.store import ContextEntry, ContextMark, SessionRecord, Store

# -- helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """Everything observable about one session, to prove a failed write changed nothing."""

    session: SessionRecord
    messages: list[MessageWithParts]
    version: int
    context: list[ContextEntry]
    snapshots: list[TurnSnapshot]


async def state_of(store: Store, session_id: str) -> State:
    version, context = await store.context_entries(session_id)
    return State(
        session=await store.get_session(session_id),
        messages=await store.get_messages(session_id),
        version=version,
        context=context,
        snapshots=await store.snapshots(session_id),
    )


def ids(messages: list[MessageWithParts]) -> list[str]:
    return [m.id for m in messages]


def seqs(messages: list[MessageWithParts]) -> list[int]:
    return [m.message.seq for m in messages]


def context_ids(entries: list[ContextEntry]) -> list[str]:
    return [e.ref_id for e in entries]


def tool_part(message: MessageWithParts, call_id: str) -> ToolPart:
    (found,) = [p for p in message.tool_parts() if p.tool_call_id == call_id]
    return found


# -- sessions ------------------------------------------------------------------


async def test_created_session_reads_back_with_zero_counters(store: Store, build: Any) -> None:
    record = build.session("s1", system_prompt="Be brief.", config_json='{"a":[1,2]}')
    await store.create_session(record)

    got = await store.get_session("s1")

    assert (got.id, got.model, got.agent, got.parent_id) == (
        "s1",
        "test-model",
        "test-agent",
        None,
    )
    assert got.system_prompt == "Be brief."
    assert got.config_json == '{"a":[1,2]}'
    assert got.created_at == record.created_at
    assert got.tokens == TokenUsage()
    assert (got.cost, got.turn_count, got.context_version) == (0.0, 0, 0)
    assert await store.get_messages("s1") == []
    assert await store.context_entries("s1") == (0, [])
    assert await store.snapshots("s1") == []


async def test_duplicate_session_id_is_refused_and_the_original_is_kept(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1", model="first"))
    await store.append("s1", (build.message("m1"),))

    with pytest.raises(MnesisError):
        await store.create_session(build.session("s1", model="second"))

    got = await store.get_session("s1")
    assert got.model == "first"
    assert ids(await store.get_messages("s1")) == ["m1"]


async def test_parent_must_exist(store: Store, build: Any) -> None:
    with pytest.raises(SessionNotFoundError) as err:
        await store.create_session(build.session("child", parent_id="no-such-parent"))
    assert err.value.session_id == "no-such-parent"
    with pytest.raises(SessionNotFoundError):
        await store.get_session("child")  # nothing half-written

    await store.create_session(build.session("parent"))
    await store.create_session(build.session("child", parent_id="parent"))
    assert (await store.get_session("child")).parent_id == "parent"
    assert (await store.get_session("parent")).parent_id is None


UNKNOWN_SESSION_CALLS: dict[str, Callable[[Store, Any], Awaitable[object]]] = {
    "get_session": lambda s, b: s.get_session("ghost"),
    "append": lambda s, b: s.append("ghost", (b.message("ghost-m1"),)),
    "context_entries": lambda s, b: s.context_entries("ghost"),
    "context_changes": lambda s, b: s.context_changes("ghost", None),
    "get_messages": lambda s, b: s.get_messages("ghost"),
    "fill_tool_results": lambda s, b: s.fill_tool_results("ghost", (b.result("c1"),)),
}


@pytest.mark.parametrize("call", sorted(UNKNOWN_SESSION_CALLS))
async def test_unknown_session_raises_session_not_found(
    store: Store, build: Any, call: str
) -> None:
    await store.create_session(build.session("real"))

    with pytest.raises(SessionNotFoundError) as err:
        await UNKNOWN_SESSION_CALLS[call](store, build)

    assert err.value.session_id == "ghost"
    assert isinstance(err.value, KeyError)  # plain ``except KeyError`` works too
    assert "ghost" in str(err.value)
    with pytest.raises(KeyError):
        await store.get_message("ghost-m1")  # the append wrote nothing
    assert await store.verify() == []


# -- appends, sequence numbers, the context view -------------------------------


async def test_append_assigns_consecutive_sequence_numbers(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2"))

    first = await store.append("s1", (build.message("a"), build.message("b", role="assistant")))
    second = await store.append(
        "s1",
        (
            build.message("c"),
            build.message("d", role="assistant", status=MessageStatus.FAILED, error="boom"),
            build.message("e"),
        ),
    )
    other = await store.append("s2", (build.message("x"),))

    assert first.seqs == (1, 2)
    assert second.seqs == (3, 4, 5)  # failed messages take a number too
    assert other.seqs == (1,)  # numbering is per session
    messages = await store.get_messages("s1")
    assert ids(messages) == ["a", "b", "c", "d", "e"]
    assert seqs(messages) == [1, 2, 3, 4, 5]
    assert all(m.message.session_id == "s1" for m in messages)
    assert ids(await store.get_messages("s2")) == ["x"]


async def test_append_of_no_messages_assigns_nothing(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("a"),))

    outcome = await store.append("s1", ())

    assert outcome.seqs == ()
    assert outcome.version_before == outcome.version_after == 1
    assert ids(await store.get_messages("s1")) == ["a"]


async def test_complete_messages_join_the_context_view_in_order(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("u1", build.text("hello", 4)),))
    await store.append(
        "s1",
        (
            build.message("a1", build.text("hi", 2), build.text("there", 3), role="assistant"),
            build.message("u2", build.text("how are you?", 6)),
        ),
    )

    version, entries = await store.context_entries("s1")

    assert context_ids(entries) == ["u1", "a1", "u2"]
    assert [e.kind for e in entries] == ["message"] * 3
    assert [e.role for e in entries] == ["user", "assistant", "user"]
    assert entries[1].parts == (TextPart(text="hi"), TextPart(text="there"))
    assert entries[1].part_tokens == (2, 3)
    assert [e.token_count for e in entries] == [4, 5, 6]
    assert version == (await store.get_session("s1")).context_version == 2


async def test_failed_message_is_stored_but_not_in_context(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("u1"),))
    version_before = (await store.get_session("s1")).context_version

    outcome = await store.append(
        "s1",
        (
            build.message(
                "a-failed",
                role="assistant",
                status=MessageStatus.FAILED,
                error="provider said 500",
                finish_reason="error",
            ),
            build.message("a-streaming", role="assistant", status=MessageStatus.STREAMING),
        ),
    )

    messages = await store.get_messages("s1")
    assert ids(messages) == ["u1", "a-failed", "a-streaming"]
    failed = await store.get_message("a-failed")
    assert failed.message.status == MessageStatus.FAILED
    assert failed.message.error is not None
    assert (failed.message.error.code, failed.message.error.message) == (
        "unknown",
        "provider said 500",
    )
    assert failed.message.finish_reason == "error"
    assert (await store.get_message("a-streaming")).message.status == MessageStatus.STREAMING
    version, entries = await store.context_entries("s1")
    assert context_ids(entries) == ["u1"]
    assert outcome.version_before == outcome.version_after == version == version_before
    assert await store.verify("s1") == []


async def test_message_metadata_round_trips(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    usage = TokenUsage(input=11, output=22, cache_read=3, cache_write=4, total=0)
    new = build.message(
        "a1",
        build.text("answer", 9),
        role="assistant",
        created_at=1_712_345_678.25,
        model="provider/model-x",
        finish_reason="stop",
        tokens=usage,
        cost=0.0125,
    )
    await store.append("s1", (new,))

    got = (await store.get_message("a1")).message

    assert got.id == "a1"
    assert got.session_id == "s1"
    assert got.seq == 1
    assert got.role == "assistant"
    assert got.created_at == 1_712_345_678_250
    assert got.model == "provider/model-x"
    assert got.status == MessageStatus.COMPLETE
    assert got.finish_reason == "stop"
    assert got.error is None
    assert (got.tokens.input, got.tokens.output) == (11, 22)
    assert (got.tokens.cache_read, got.tokens.cache_write) == (3, 4)
    assert got.tokens.effective_total() == usage.effective_total() == 40
    assert got.cost == pytest.approx(0.0125)
    assert got.token_count == new.token_count == 9


async def test_get_message_of_unknown_id_raises_key_error(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("m1"),))

    with pytest.raises(KeyError):
        await store.get_message("m2")
    assert (await store.get_message("m1")).id == "m1"


async def test_sessions_do_not_see_each_others_messages(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2", parent_id="s1"))
    await store.append("s1", (build.message("one"), build.message("two", role="assistant")))
    await store.append("s2", (build.message("three"),))

    assert ids(await store.get_messages("s1")) == ["one", "two"]
    assert ids(await store.get_messages("s2")) == ["three"]
    assert context_ids((await store.context_entries("s2"))[1]) == ["three"]
    assert (await store.get_session("s2")).context_version == 1


# -- usage, cost, turns ----------------------------------------------------------


async def test_usage_and_cost_accumulate_only_with_the_turn(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    # Messages carry their own usage and cost; the session counters only move
    # with the ``usage``/``cost`` of the append (the turn), never double-counted.
    await store.append(
        "s1",
        (
            build.message("u1"),
            build.message("a1", role="assistant", tokens=TokenUsage(input=99, output=99), cost=9.0),
        ),
    )
    untouched = await store.get_session("s1")
    assert untouched.tokens == TokenUsage()
    assert (untouched.cost, untouched.turn_count) == (0.0, 0)
    assert untouched.updated_at >= untouched.created_at

    await store.append(
        "s1",
        (build.message("u2"), build.message("a2", role="assistant")),
        usage=TokenUsage(input=10, output=5, cache_read=2, cache_write=1),  # total from parts
        cost=0.25,
        snapshot=build.snapshot(0),
    )
    await store.append(
        "s1",
        (build.message("u3"), build.message("a3", role="assistant")),
        usage=TokenUsage(input=7, output=3, total=12),  # provider-given total wins
        cost=0.5,
        snapshot=build.snapshot(1),
    )
    session = await store.get_session("s1")
    assert (session.tokens.input, session.tokens.output) == (17, 8)
    assert (session.tokens.cache_read, session.tokens.cache_write) == (2, 1)
    assert session.tokens.total == 18 + 12
    assert session.cost == pytest.approx(0.75)
    assert session.turn_count == 2

    # A usage without a snapshot adds tokens but is not a completed turn.
    await store.append("s1", (), usage=TokenUsage(input=1), cost=0.01)
    session = await store.get_session("s1")
    assert session.tokens.input == 18
    assert session.cost == pytest.approx(0.76)
    assert session.turn_count == 2

    # A refused append (duplicate message id) adds nothing at all.
    with pytest.raises(MnesisError):
        await store.append(
            "s1",
            (build.message("u1"),),
            usage=TokenUsage(input=1000),
            cost=100.0,
            snapshot=build.snapshot(2),
        )
    assert await store.get_session("s1") == session
    assert len(await store.snapshots("s1")) == 2
    assert await store.verify("s1") == []


async def test_snapshots_round_trip(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2"))
    compaction = CompactionResult(
        session_id="s1",
        summary_message_id="sum-1",
        level_used=2,
        compacted_message_count=14,
        summary_token_count=321,
        tokens_before=9000,
        tokens_after=1200,
        elapsed_ms=12.5,
        pruned_tool_outputs=3,
        pruned_tokens=456,
    )
    snaps = [
        TurnSnapshot(
            turn_index=0,
            role="assistant",
            context_tokens=ContextBreakdown(system_prompt=10, messages=30, total=40),
        ),
        TurnSnapshot(
            turn_index=1,
            role="user",
            context_tokens=ContextBreakdown(
                system_prompt=10, summary=5, messages=20, tool_outputs=7, total=42
            ),
            compaction_triggered=True,
            compact_result=compaction,
        ),
        TurnSnapshot(turn_index=2, role="assistant", context_tokens=ContextBreakdown(total=1)),
    ]
    for i, snap in enumerate(snaps):
        await store.append("s1", (build.message(f"m{i}"),), snapshot=snap)
    await store.append("s2", (build.message("other"),), snapshot=build.snapshot(0, total=7))

    # the store numbers the turns, whatever index the caller's snapshot carried
    numbered = [s.model_copy(update={"turn_index": i}) for i, s in enumerate(snaps, 1)]
    assert await store.snapshots("s1") == numbered
    assert (await store.snapshots("s1"))[1].compact_result == compaction
    assert await store.snapshots("s2") == [build.snapshot(1, total=7)]
    assert (await store.get_session("s1")).turn_count == 3


# -- tool calls and their result slot -----------------------------------------


async def _session_with_tool_calls(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1",
        (
            build.message("u1", build.text("look these up", 4)),
            build.message(
                "a1",
                build.text("calling tools", 3),
                build.tool_call("c1", token_count=7),
                build.tool_call("c2", token_count=8),
                role="assistant",
                finish_reason="tool_calls",
            ),
        ),
    )


async def test_tool_result_slot_fills_exactly_once(store: Store, build: Any) -> None:
    await _session_with_tool_calls(store, build)
    pending = await store.get_message("a1")
    assert tool_part(pending, "c1").status == ToolStatus.PENDING
    assert tool_part(pending, "c1").output is None

    outcome = await store.fill_tool_results("s1", (build.result("c1", "42", token_count=5),))

    assert outcome.message_ids == ("a1",)
    assert outcome.seqs == ()
    assert outcome.version_after == outcome.version_before + 1
    filled = await store.get_message("a1")
    c1 = tool_part(filled, "c1")
    assert (c1.output, c1.error_message, c1.status) == ("42", None, ToolStatus.COMPLETED)
    assert c1.tool_name == "lookup" and c1.input == {"q": "c1"}  # the call is unchanged
    assert tool_part(filled, "c2").status == ToolStatus.PENDING
    assert filled.message.token_count == 3 + 7 + 8 + 5
    _, entries = await store.context_entries("s1")
    assert entries[1].part_tokens == (3, 7 + 5, 8)

    # A second fill of the same slot is refused and writes nothing.
    before = await state_of(store, "s1")
    with pytest.raises(ToolResultError, match="c1"):
        await store.fill_tool_results("s1", (build.result("c1", "again"),))
    assert await state_of(store, "s1") == before

    # In a batch whose 2nd result is invalid, the 1st is not written either:
    # once because the 2nd slot is already filled ...
    with pytest.raises(ToolResultError):
        await store.fill_tool_results(
            "s1", (build.result("c2", "fine"), build.result("c1", "second time"))
        )
    assert await state_of(store, "s1") == before
    assert tool_part(await store.get_message("a1"), "c2").status == ToolStatus.PENDING
    # ... and once because the 2nd call does not exist.
    with pytest.raises(ToolResultError):
        await store.fill_tool_results(
            "s1", (build.result("c2", "fine"), build.result("no-such-call"))
        )
    assert await state_of(store, "s1") == before

    # An error result fills the slot as an error.
    await store.fill_tool_results("s1", (build.result("c2", None, error="timed out"),))
    c2 = tool_part(await store.get_message("a1"), "c2")
    assert (c2.output, c2.error_message, c2.status) == (None, "timed out", ToolStatus.ERROR)
    with pytest.raises(ToolResultError):
        await store.fill_tool_results("s1", (build.result("c2", "late"),))
    assert await store.verify("s1") == []


async def test_the_same_call_twice_in_one_batch_is_refused(store: Store, build: Any) -> None:
    await _session_with_tool_calls(store, build)
    before = await state_of(store, "s1")

    with pytest.raises(ToolResultError):
        await store.fill_tool_results("s1", (build.result("c1", "a"), build.result("c1", "b")))

    assert await state_of(store, "s1") == before


async def test_tool_result_for_a_call_of_another_session_is_refused(
    store: Store, build: Any
) -> None:
    await _session_with_tool_calls(store, build)
    await store.create_session(build.session("s2"))
    before = await state_of(store, "s1")

    with pytest.raises(ToolResultError) as err:
        await store.fill_tool_results("s2", (build.result("c1"),))

    assert isinstance(err.value, ValueError)
    assert await state_of(store, "s1") == before
    assert (await store.get_session("s2")).context_version == 0


async def test_results_spanning_two_messages_name_both(store: Store, build: Any) -> None:
    await _session_with_tool_calls(store, build)
    await store.append(
        "s1",
        (build.message("a2", build.tool_call("c3"), role="assistant"),),
    )

    outcome = await store.fill_tool_results(
        "s1", (build.result("c3", "x"), build.result("c1", "y"), build.result("c2", "z"))
    )

    assert sorted(outcome.message_ids) == ["a1", "a2"]
    assert tool_part(await store.get_message("a2"), "c3").output == "x"
    assert [p.output for p in (await store.get_message("a1")).tool_parts()] == ["y", "z"]


# -- parts, odd strings --------------------------------------------------------


async def test_parts_round_trip_all_types(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    text = (
        "Hello 👋🏽 world 🌍 — 你好，世界 — こんにちは — 안녕하세요 — مرحبا — "
        "e\u0301 (combining) — \"quotes\" 'single' \\backslash\\ \t tab\nnew line\r\n"
        "zero\u200bwidth — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 — 🏳️‍🌈"
    )
    nested = {
        "query": "SELECT * FROM t",
        "limit": 10,
        "ratio": 0.5,
        "flags": [True, False, None],
        "deep": {"list": [1, [2, [3, {"k": "値"}]]], "empty": {}, "none": None},
        "emoji 🔑": "value 🔒",
    }
    parts = (
        build.text(text, 50),
        build.part(ToolPart(tool_name="sql", tool_call_id="call-1", input=nested), 30),
        build.part(
            ToolPart(
                tool_name="search",
                tool_call_id="call-2",
                input={},
                output="already done ✅",
                status=ToolStatus.COMPLETED,
            ),
            20,
            result_token_count=4,
        ),
        build.file_ref("content-💾", "/tmp/データ/report 2024.csv"),
        build.text("", 0),
    )
    await store.append("s1", (build.message("a1", *parts, role="assistant"),))

    stored = await store.get_message("a1")
    expected = [p.part for p in parts]
    assert stored.parts == expected
    assert isinstance(stored.parts[3], FileRefPart)
    assert stored.parts[1].input == nested  # type: ignore[union-attr]
    assert stored.text_content() == text
    assert (await store.get_messages("s1"))[0].parts == expected
    _, entries = await store.context_entries("s1")
    assert list(entries[0].parts) == expected
    assert entries[0].part_tokens == (50, 30, 24, 40, 0)
    assert stored.message.token_count == 144
    # The pre-filled call already has its result: its slot cannot be filled again.
    with pytest.raises(ToolResultError):
        await store.fill_tool_results("s1", (build.result("call-2"),))
    await store.fill_tool_results("s1", (build.result("call-1", "rows: 3 — 三"),))
    assert tool_part(await store.get_message("a1"), "call-1").output == "rows: 3 — 三"


INJECTIONS = [
    "'); DROP TABLE messages; --",
    '"; DROP TABLE sessions; --',
    "x' OR '1'='1",
    "1; DELETE FROM parts WHERE 1=1; --",
    "%_\\' UNION SELECT * FROM sessions --",
]


@pytest.mark.parametrize("evil", INJECTIONS)
async def test_sql_injection_strings_are_stored_verbatim(
    store: Store, build: Any, evil: str
) -> None:
    await store.create_session(build.session("bystander"))
    await store.append("bystander", (build.message("bystander-m"),))
    await store.create_session(
        build.session(
            evil, model=evil, agent=evil, system_prompt=evil, config_json='{"v":"' + evil + '"}'
        )
    )
    await store.create_session(build.session(evil + "child", parent_id=evil))

    await store.append(
        evil,
        (
            build.message(evil, text=evil, model=evil, finish_reason=evil),
            build.message(
                evil + "2", build.tool_call(evil, name=evil, input={evil: evil}), role="assistant"
            ),
            build.message(evil + "3", status=MessageStatus.FAILED, error=evil),
        ),
    )
    await store.fill_tool_results(evil, (build.result(evil, evil, token_count=1),))

    session = await store.get_session(evil)
    assert (session.id, session.model, session.agent, session.system_prompt) == (evil,) * 4
    assert (await store.get_session(evil + "child")).parent_id == evil
    messages = await store.get_messages(evil)
    assert ids(messages) == [evil, evil + "2", evil + "3"]
    assert messages[0].text_content() == evil
    assert (messages[0].message.model, messages[0].message.finish_reason) == (evil, evil)
    call = tool_part(messages[1], evil)
    assert (call.tool_name, call.input, call.output) == (evil, {evil: evil}, evil)
    assert messages[2].message.error is not None
    assert messages[2].message.error.message == evil
    assert context_ids((await store.context_entries(evil))[1]) == [evil, evil + "2"]
    # Nothing was executed: the other session and every table are intact.
    assert ids(await store.get_messages("bystander")) == ["bystander-m"]
    assert await store.verify() == []


# -- the context version ------------------------------------------------------


async def test_context_version_bumps_on_context_changes(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))

    async def version() -> int:
        from_session = (await store.get_session("s1")).context_version
        from_view, _ = await store.context_entries("s1")
        assert from_session == from_view
        return from_view

    assert await version() == 0

    joined = await store.append(
        "s1", (build.message("u1"), build.message("a1", build.tool_call("c1"), role="assistant"))
    )
    assert (joined.version_before, joined.version_after) == (0, 1)
    assert await version() == 1  # one bump per append, however many messages joined

    failed = await store.append(
        "s1", (build.message("a2", role="assistant", status=MessageStatus.FAILED),)
    )
    assert (failed.version_before, failed.version_after) == (1, 1)
    assert await version() == 1

    bookkeeping = await store.append(
        "s1", (), usage=TokenUsage(input=3), snapshot=build.snapshot(0)
    )
    assert bookkeeping.version_after == 1
    assert await version() == 1

    filled = await store.fill_tool_results("s1", (build.result("c1"),))
    assert (filled.version_before, filled.version_after) == (1, 2)
    assert await version() == 2

    with pytest.raises(MnesisError):
        await store.append("s1", (build.message("u1"),))  # duplicate id: refused
    with pytest.raises(ToolResultError):
        await store.fill_tool_results("s1", (build.result("c1"),))
    assert await version() == 2

    again = await store.append("s1", (build.message("u2"),))
    assert (again.version_before, again.version_after) == (2, 3)
    assert await version() == 3


# -- catching up with the context view -------------------------------------------


async def test_appends_give_context_positions_after_every_earlier_one(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1"))
    first = await store.append(
        "s1",
        (
            build.message("u1"),
            build.message("x1", status=MessageStatus.FAILED),
            build.message("a1", role="assistant"),
        ),
    )
    second = await store.append("s1", (build.message("u2"),))

    assert (first.seqs, first.positions, second.positions) == ((1, 2, 3), (1, 2), (3,))
    assert (first.rewrites, second.rewrites) == (0, 0)
    _, entries = await store.context_entries("s1")
    assert [(e.ref_id, e.seq, e.position) for e in entries] == [
        ("u1", 1, 1),
        ("a1", 3, 2),
        ("u2", 4, 3),
    ]


async def test_context_changes_send_a_copy_only_the_tail_and_its_filled_entries(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1", (build.message("u1"), build.message("a1", build.tool_call("c1"), role="assistant"))
    )
    whole = await store.context_changes("s1", None)
    assert (whole.version, whole.rewrites, whole.whole) == (1, 0, True)
    assert context_ids(list(whole.entries)) == ["u1", "a1"]
    mark = ContextMark(whole.version, whole.rewrites, 2, ("a1",))
    assert (await store.context_changes("s1", mark)).entries == ()  # nothing new
    unknown = await store.context_changes("s1", ContextMark(whole.version, None, 2))
    assert (unknown.whole, unknown.entries, unknown.rewrites) == (False, (), 0)

    await store.append("s1", (build.message("u2"), build.message("u3")))
    await store.fill_tool_results("s1", (build.result("c1", "found"),))
    changes = await store.context_changes("s1", mark)

    assert (changes.version, changes.rewrites, changes.whole) == (3, 0, False)
    assert [(e.ref_id, e.position) for e in changes.entries] == [("u2", 3), ("u3", 4)]
    (filled,) = changes.filled
    assert filled.ref_id == "a1" and not filled.awaits_results
    # the copy with the filled entry swapped in and the tail after it is the view
    copy = [filled if e.ref_id == "a1" else e for e in whole.entries] + list(changes.entries)
    assert copy == (await store.context_entries("s1"))[1]
    # a copy cut short of any version is sent what follows it all the same
    cut = await store.context_changes("s1", ContextMark(None, 0, 3))
    assert context_ids(list(cut.entries)) == ["u3"]


REWRITES: dict[str, Callable[[Store, Any], Awaitable[Any]]] = {
    "summary": lambda s, b: s.commit_summary("s1", b.summary("S1", "u1", "a1")),
    "prune": lambda s, b: s.prune_tool_outputs("s1", ("c1",)),
    "pin": lambda s, b: s.pin("s1", "u1"),
}


@pytest.mark.parametrize("rewrite", sorted(REWRITES))
async def test_a_rewrite_is_counted_and_sends_a_copy_the_whole_view(
    store: Store, build: Any, rewrite: str
) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1", (build.message("u1"), build.message("a1", build.tool_call("c1"), role="assistant"))
    )
    filled = await store.fill_tool_results("s1", (build.result("c1"),))
    assert filled.rewrites == 0  # a result fills a slot in place: no rewrite
    version, entries = await store.context_entries("s1")
    mark = ContextMark(version, 0, entries[-1].position)

    outcome = await REWRITES[rewrite](store, build)
    assert (outcome.version_after, outcome.rewrites) == (version + 1, 1)
    again = await REWRITES[rewrite](store, build) if rewrite != "summary" else outcome
    assert again.rewrites == 1  # a write that changed nothing counts nothing
    await store.append("s1", (build.message("u2"),))
    changes = await store.context_changes("s1", mark)

    assert (changes.rewrites, changes.whole) == (1, True)
    assert list(changes.entries) == (await store.context_entries("s1"))[1]
    assert changes.version == (await store.get_session("s1")).context_version


# -- bad input ------------------------------------------------------------------

BAD_APPENDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "duplicate id within the batch": lambda b: {
        "messages": (b.message("new-1"), b.message("new-1", role="assistant"))
    },
    "id of an existing message": lambda b: {
        "messages": (b.message("new-1"), b.message("existing"))
    },
    "id of a message in another session": lambda b: {
        "messages": (b.message("new-1"), b.message("elsewhere"))
    },
    "role that is not user or assistant": lambda b: {
        "messages": (b.message("new-1"), b.message("new-2", role="system"))
    },
    "status that does not exist": lambda b: {
        "messages": (b.message("new-1"), b.message("new-2", status="exploded"))
    },
    "cost that is not a number": lambda b: {
        "messages": (b.message("new-1"), b.message("new-2", cost=float("nan")))
    },
    "session cost that is not a number": lambda b: {
        "messages": (b.message("new-1"),),
        "cost": float("nan"),
        "usage": TokenUsage(input=5),
    },
}


@pytest.mark.parametrize("case", sorted(BAD_APPENDS))
async def test_bad_append_is_refused_whole_with_a_clear_error(
    store: Store, build: Any, case: str
) -> None:
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2"))
    await store.append("s2", (build.message("elsewhere"),))
    await store.append(
        "s1", (build.message("existing"),), usage=TokenUsage(input=1), snapshot=build.snapshot(0)
    )
    before = await state_of(store, "s1")
    before_other = await state_of(store, "s2")

    with pytest.raises(MnesisError) as err:
        await store.append("s1", **BAD_APPENDS[case](build))

    assert isinstance(err.value, MnesisStoreError | InvalidInputError)
    assert not isinstance(err.value, sqlite3.Error)  # no raw driver error
    assert str(err.value)
    assert await state_of(store, "s1") == before
    assert await state_of(store, "s2") == before_other
    with pytest.raises(KeyError):
        await store.get_message("new-1")
    assert await store.verify() == []


LONE_SURROGATE = "bad \udcff byte"  # what os.fsdecode() makes of a non-UTF-8 file name


@pytest.mark.parametrize("where", ["text part", "file reference path"])
async def test_unencodable_part_text_is_refused_without_poisoning_the_session(
    store: Store, build: Any, where: str
) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("good"),))
    part = (
        build.text(LONE_SURROGATE) if where == "text part" else build.file_ref(path=LONE_SURROGATE)
    )

    try:
        with pytest.raises(MnesisError):
            await store.append("s1", (build.message("bad", part),))
    finally:
        # Whatever happened, the session must stay readable.
        assert ids(await store.get_messages("s1")) == ["good"]
        assert context_ids((await store.context_entries("s1"))[1]) == ["good"]


@pytest.mark.parametrize("where", ["message id", "tool result output"])
async def test_unencodable_strings_give_a_mnesis_error(
    store: Store, build: Any, where: str
) -> None:
    await _session_with_tool_calls(store, build)
    before = await state_of(store, "s1")

    try:
        with pytest.raises(MnesisError):
            if where == "message id":
                await store.append("s1", (build.message(LONE_SURROGATE),))
            else:
                await store.fill_tool_results("s1", (build.result("c1", LONE_SURROGATE),))
    finally:
        assert await state_of(store, "s1") == before  # nothing half-written


# -- invariants ----------------------------------------------------------------


async def _busy_store(store: Store, build: Any) -> None:
    """A store with a bit of everything: several sessions, turns, failures, tools."""
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2", parent_id="s1"))
    await store.create_session(build.session("empty"))
    for turn in range(3):
        await store.append(
            "s1",
            (
                build.message(f"u{turn}"),
                build.message(f"a{turn}", build.tool_call(f"c{turn}"), role="assistant"),
            ),
            usage=TokenUsage(input=10, output=5),
            cost=0.1,
            snapshot=build.snapshot(turn),
        )
        await store.fill_tool_results("s1", (build.result(f"c{turn}", f"out {turn}"),))
    await store.append(
        "s1", (build.message("a-failed", role="assistant", status=MessageStatus.FAILED),)
    )
    await store.append("s2", (build.message("child-u"), build.message("child-a", role="assistant")))


async def test_verify_reports_no_problems_on_a_healthy_store(store: Store, build: Any) -> None:
    await _busy_store(store, build)

    assert await store.verify() == []
    for sid in ("s1", "s2", "empty"):
        assert await store.verify(sid) == []
    assert len(await store.get_messages("s1")) == 7


TAMPERING: dict[str, tuple[str, tuple[Any, ...]]] = {
    "gap in the sequence": ("UPDATE messages SET seq = 99 WHERE id = ?", ("u1",)),
    "message token count off": (
        "UPDATE messages SET token_count = token_count + 1 WHERE id = ?",
        ("a0",),
    ),
    "part tokens changed": (
        "UPDATE parts SET token_count = token_count + 5 WHERE message_id = ?",
        ("u0",),
    ),
    "complete message dropped from context": (
        "DELETE FROM context_items WHERE ref_id = ?",
        ("a1",),
    ),
    "failed message put into context": (
        "INSERT INTO context_items (session_id, position, kind, ref_id) "
        "VALUES ('s1', 1000, 'message', ?)",
        ("a-failed",),
    ),
    "message twice in context": (
        "INSERT INTO context_items (session_id, position, kind, ref_id) "
        "VALUES ('s1', 1001, 'message', ?)",
        ("u0",),
    ),
    "turn count off": ("UPDATE sessions SET turn_count = turn_count + 1 WHERE id = ?", ("s1",)),
    "snapshot deleted": ("DELETE FROM turns WHERE session_id = ? AND turn_index = 1", ("s1",)),
    "orphan part": (
        "INSERT INTO parts (message_id, session_id, idx, type, data, token_count) "
        "VALUES (?, 's1', 0, 'text', '{}', 1)",
        ("no-such-message",),
    ),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
async def test_verify_detects_tampering(
    store: Store, build: Any, raw_sql: Callable[[str, tuple[Any, ...]], None], tamper: str
) -> None:
    await _busy_store(store, build)
    assert await store.verify() == []

    raw_sql(*TAMPERING[tamper])

    problems = await store.verify()
    assert problems, f"verify() missed: {tamper}"
    assert all(isinstance(p, str) and p for p in problems)
    if tamper != "orphan part":  # (an orphan part belongs to no session)
        assert any("s1" in p for p in problems)
        assert await store.verify("s1") == problems
        assert await store.verify("s2") == []  # other sessions stay clean


# -- lifecycle ------------------------------------------------------------------


async def test_closed_store_refuses_further_calls(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))

    await store.close()
    await store.close()  # closing twice is harmless

    with pytest.raises(MnesisStoreError, match="closed"):
        await store.get_session("s1")
    with pytest.raises(MnesisStoreError):
        await store.append("s1", (build.message("m1"),))


async def test_only_one_holder_compacts_a_session_at_a_time(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.create_session(build.session("s2"))
    async with store.compaction_lock("s1") as first:
        assert first
        async with store.compaction_lock("s1") as second:
            assert not second  # refused at once, not waited for
        async with store.compaction_lock("s2") as other:
            assert other  # other sessions are independent
        # Turns go on while the lock is held.
        await store.append("s1", (build.message("during"),))
    async with store.compaction_lock("s1") as again:
        assert again  # released on exit
    assert [m.id for m in await store.get_messages("s1")] == ["during"]


async def test_a_pruned_output_reads_back_with_its_prune_time(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1", (build.message("u1"), build.message("a1", build.tool_call("c1"), role="assistant"))
    )
    await store.fill_tool_results("s1", (build.result("c1", "found"),))
    before = datetime.now(UTC).timestamp() * 1000
    await store.prune_tool_outputs("s1", ("c1",))
    after = datetime.now(UTC).timestamp() * 1000

    (part,) = [
        p for m in await store.get_messages("s1") for p in m.parts if isinstance(p, ToolPart)
    ]
    assert isinstance(part, ToolPart) and part.pruned and part.output == "found"
    assert part.compacted_at is not None and before - 1 <= part.compacted_at <= after + 1
    assert part.status.compacted_at == part.compacted_at and part.status.state == "completed"
