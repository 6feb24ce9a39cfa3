"""A writer catches up with only what it missed, on both backends.

Several writers on one session keep finding another's write before their own.
A writer whose copy of the context view missed only appends (and tool results
filled in place) reads the entries after the last one it holds; one that missed
a rewrite (a summary, a prune, a pin) re-reads the whole view. Either way it
ends with exactly the context a fresh ``load()`` sees.

The store's ``context_changes`` is watched through a spy on the shared SQL
backend, so each test can say which read a catch-up made; the "other writer"
is a second store on the same database (its own connections), or the same
store driven directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.context import ContextWindow
from mnesis.llm.base import LLMRequest
from mnesis.models.results import TurnSnapshot
from mnesis.session.live_context import LiveContext
from mnesis.store import ContextChanges, ContextMark, NewMessage, PostgresStore, SQLiteStore, Store
from mnesis.store.sql.backend import SQLBackend

MODEL = "openai/gpt-4o"
USAGE = TokenUsage(input=7, output=3)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ContextChanges]]:
    """Every ``context_changes`` result, in order, from any store in this process."""
    seen: list[ContextChanges] = []
    real = SQLBackend.context_changes

    async def spy(self: SQLBackend, session_id: str, since: ContextMark | None) -> ContextChanges:
        changes = await real(self, session_id, since)
        seen.append(changes)
        return changes

    monkeypatch.setattr(SQLBackend, "context_changes", spy)
    yield seen


class RacedStore:
    """A store whose next append is followed at once by another writer's append,
    before the appending writer can read anything (a thin wrapper over the real one)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.then: tuple[NewMessage, ...] = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(self, session_id: str, messages: tuple[NewMessage, ...], **kw: Any) -> Any:
        outcome = await self._store.append(session_id, messages, **kw)
        if self.then:
            raced, self.then = self.then, ()
            await self._store.append(session_id, raced)
        return outcome


def ids(live: LiveContext) -> list[str]:
    return [e.ref_id for e in live.window.entries]


async def assert_mirrors_the_store(live: LiveContext, store: Store) -> None:
    """The window holds exactly what a fresh load of the view holds, rendered the same."""
    _, entries = await store.context_entries("s1")
    fresh = ContextWindow(entries)
    assert live.window.entries == fresh.entries
    assert live.window.messages("sys") == fresh.messages("sys")
    assert live.window.token_count == fresh.token_count


async def writer_on(store: Store, build: Any, through: Any = None) -> LiveContext:
    """A session's live context over a two-message history, mirroring the view; it
    talks to the store ``through`` a wrapper if one is given."""
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("m1"), build.message("m2", role="assistant")))
    version, entries = await store.context_entries("s1")
    live = LiveContext(through or store, "s1", entries, version)
    await live.append((build.message("a1"),))  # in place: the store says its rewrite count
    return live


# -- appends only: the tail --------------------------------------------------------


async def test_a_writer_that_missed_appends_reads_only_the_entries_after_its_own(
    store: Store,
    build: Any,
    reads: list[ContextChanges],
    open_store_at: Callable[[str], Awaitable[Store]],
) -> None:
    live = await writer_on(store, build)
    assert isinstance(store, SQLiteStore | PostgresStore)
    other = await open_store_at(str(store.path) if isinstance(store, SQLiteStore) else store.url)
    try:
        for i in range(3):
            await other.append("s1", (build.message(f"b{i}"), build.message(f"b{i}r")))
        reads.clear()

        await live.append((build.message("a2"),))

        (read,) = reads
        assert not read.whole
        assert [e.ref_id for e in read.entries] == ["b0", "b0r", "b1", "b1r", "b2", "b2r", "a2"]
        assert [e.position for e in read.entries] == list(range(4, 11))
        await assert_mirrors_the_store(live, store)
    finally:
        await other.close()


async def test_nothing_changed_elsewhere_reads_no_entries(
    store: Store, build: Any, reads: list[ContextChanges]
) -> None:
    live = await writer_on(store, build)
    version, entries = await store.context_entries("s1")
    loaded = LiveContext(store, "s1", entries, version)  # as load() makes it: no rewrite count
    reads.clear()

    await live.catch_up()
    await loaded.catch_up()

    assert [(r.whole, r.entries, r.filled) for r in reads] == [(False, (), ())] * 2
    await assert_mirrors_the_store(live, store)
    await assert_mirrors_the_store(loaded, store)


async def test_a_caught_up_turn_ends_with_its_own_entries_and_the_rest_follows(
    store: Store, build: Any, reads: list[ContextChanges]
) -> None:
    raced = RacedStore(store)
    live = await writer_on(store, build, through=raced)
    await store.append("s1", (build.message("b1"),))  # before this writer's turn
    raced.then = (build.message("b2"),)  # lands right after it, before it reads
    reads.clear()

    await live.append((build.message("a2"), build.message("a2r", role="assistant")))

    # the tail held b2 too, but a turn never ends with another writer's message after it
    assert not reads[-1].whole
    assert [e.ref_id for e in reads[-1].entries] == ["b1", "a2", "a2r", "b2"]
    assert ids(live)[-3:] == ["b1", "a2", "a2r"]

    await live.append((build.message("a3"),))  # the next write brings b2, in its place

    assert not reads[-1].whole
    assert [e.ref_id for e in reads[-1].entries] == ["b2", "a3"]
    await assert_mirrors_the_store(live, store)


# -- tool results filled in place ------------------------------------------------


async def test_a_tool_result_filled_elsewhere_comes_with_the_tail(
    store: Store, build: Any, reads: list[ContextChanges]
) -> None:
    live = await writer_on(store, build)
    await store.append("s1", (build.message("b1", build.tool_call("c1"), role="assistant"),))
    await live.append((build.message("a2"),))  # the call is in the window, without a result
    assert live.window.awaiting_results == ("b1",)
    await store.fill_tool_results("s1", (build.result("c1", "the answer"),))
    await store.append("s1", (build.message("b2"),))
    reads.clear()

    await live.append((build.message("a3"),))

    (read,) = reads
    assert not read.whole
    assert [e.ref_id for e in read.filled] == ["b1"]
    assert [e.ref_id for e in read.entries] == ["b2", "a3"]
    assert live.window.awaiting_results == ()
    assert "the answer" in str(live.window.messages(None))
    await assert_mirrors_the_store(live, store)


async def test_filling_its_own_calls_after_another_writer_keeps_the_turn_together(
    store: Store, build: Any, reads: list[ContextChanges]
) -> None:
    live = await writer_on(store, build)
    await live.append((build.message("a1r", build.tool_call("c1"), role="assistant"),))
    await store.append("s1", (build.message("b1"),))  # another writer, mid-turn
    reads.clear()

    await live.fill_tool_results((build.result("c1", "found it"),))

    # the model's next call sees its call, its result, and not b1 after them
    assert not reads[-1].whole
    assert ids(live)[-2:] == ["a1", "a1r"]
    assert "found it" in str(live.window.messages(None))

    await live.append((build.message("a1f", role="assistant"),))  # the turn's reply

    assert not reads[-1].whole
    assert [e.ref_id for e in reads[-1].entries] == ["b1", "a1f"]
    await assert_mirrors_the_store(live, store)


# -- rewrites: the whole view ------------------------------------------------------


async def summarise(store: Store, build: Any) -> None:
    await store.commit_summary("s1", build.summary("S1", "m1", "m2"))


async def prune(store: Store, build: Any) -> None:
    await store.prune_tool_outputs("s1", ("c9",))


async def pin(store: Store, build: Any) -> None:
    await store.pin("s1", "m2")


REWRITES = {"summary": summarise, "prune": prune, "pin": pin}


@pytest.mark.parametrize("rewrite", sorted(REWRITES))
async def test_a_writer_that_missed_a_rewrite_reads_the_whole_view(
    store: Store, build: Any, reads: list[ContextChanges], rewrite: str
) -> None:
    live = await writer_on(store, build)
    await live.append((build.message("t1", build.tool_call("c9"), role="assistant"),))
    await live.fill_tool_results((build.result("c9", "a long output"),))
    await store.append("s1", (build.message("b1"),))
    await REWRITES[rewrite](store, build)
    await store.append("s1", (build.message("b2"),))
    reads.clear()

    await live.append((build.message("a2"),))

    assert [r.whole for r in reads] == [True]
    await assert_mirrors_the_store(live, store)
    # and the next catch-up is a tail again
    await store.append("s1", (build.message("b3"),))
    await live.catch_up()
    assert not reads[-1].whole
    assert [e.ref_id for e in reads[-1].entries] == ["b3"]
    await assert_mirrors_the_store(live, store)


async def test_its_own_pin_changes_the_window_in_place(
    store: Store, build: Any, reads: list[ContextChanges]
) -> None:
    live = await writer_on(store, build)
    reads.clear()

    await live.pin("m1", usable_tokens=10_000)

    assert reads == []
    entry = live.window.get("m1")
    assert entry is not None and entry.pinned
    await assert_mirrors_the_store(live, store)


# -- whole sessions: what the next model call sees -----------------------------------


def summariser(request: LLMRequest) -> MockReply:
    return MockReply(text="Summary: they talked about rivers.", usage=USAGE)


def turn(name: str, i: int) -> tuple[str, str]:
    words = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal"
    return f"{name} asks {i}: {words * 8}", f"{name} answers {i}: {words * 8}"


async def assert_same_next_context(session: MnesisSession, db_url: str) -> None:
    fresh = await MnesisSession.load(session.id, db_path=db_url)
    try:
        assert await session.context_for_next_turn() == await fresh.context_for_next_turn()
    finally:
        await fresh.close()


async def test_sessions_sharing_one_id_catch_up_by_tail_and_after_rewrites_whole(
    db_url: str, reads: list[ContextChanges]
) -> None:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 8_000, "max_output_tokens": 500},
            "compaction": {"auto": False, "compaction_output_budget": 500},
        }
    )
    provider = MockProvider(summariser)
    a = await MnesisSession.create(model=MODEL, db_path=db_url, config=config, provider=provider)
    b = await MnesisSession.load(a.id, db_path=db_url, config=config, provider=provider)
    try:
        await a.record(*turn("a", 0), tokens=USAGE)  # b's copy learns the store's counts
        await b.record(*turn("b", 0), tokens=USAGE)
        for i in range(1, 4):
            await a.record(*turn("a", i), tokens=USAGE)
            reads.clear()
            await b.record(*turn("b", i), tokens=USAGE)
            assert [r.whole for r in reads] == [False]  # only a's turn and b's own were read
            assert [len(r.entries) for r in reads] == [4]
            await assert_same_next_context(b, db_url)

        first = (await a.messages())[0].id
        await a.pin(first)
        reads.clear()
        await assert_same_next_context(b, db_url)
        assert reads[0].whole  # b missed a rewrite

        result = await a.compact()
        assert result.compacted_message_count > 0
        reads.clear()
        await b.record(*turn("b", 9), tokens=USAGE)
        assert reads[0].whole
        await assert_same_next_context(b, db_url)
        await assert_same_next_context(a, db_url)
        assert await a.verify() == []
    finally:
        await a.close()
        await b.close()


async def test_a_turn_snapshot_still_gets_the_stores_turn_index(store: Store, build: Any) -> None:
    live = await writer_on(store, build)
    await store.append("s1", (build.message("b1"),), snapshot=build.snapshot(0))
    snapshot: TurnSnapshot = build.snapshot(0)
    outcome = await live.append((build.message("a2"),), snapshot=snapshot)
    assert outcome.turn_index == 2
    await assert_mirrors_the_store(live, store)
