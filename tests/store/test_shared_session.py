"""Many writers, one session: the store numbers every turn, on both backends.

The contract cases drive the store directly (two stores on one database, so the
appends really race on separate connections); the session cases open one
session several times, in this process and in separate ``python -c`` processes
that first report ``ready`` and wait for ``go``, so their turns really overlap.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.llm.base import LLMRequest
from mnesis.store import PostgresStore, SQLiteStore, Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

MODEL = "openai/gpt-4o"
USAGE = TokenUsage(input=7, output=3)


async def second_store(store: Store) -> Store:
    """Another open store on the same database: its own connection(s)."""
    if isinstance(store, SQLiteStore):
        return await SQLiteStore(store.path, timeout=30.0).open()
    assert isinstance(store, PostgresStore)
    return await PostgresStore(store.url).open()


# -- the store contract ----------------------------------------------------------


async def test_the_store_numbers_turns_whatever_the_snapshot_says(store: Store, build: Any) -> None:
    await store.create_session(build.session("s1"))
    indexes = []
    for i in range(3):
        outcome = await store.append(
            "s1",
            (build.message(f"u{i}"), build.message(f"a{i}", role="assistant")),
            usage=USAGE,
            cost=0.5,
            snapshot=build.snapshot(0),  # a stale index from a process's own count
        )
        indexes.append(outcome.turn_index)
        assert outcome.counters is not None
        assert outcome.counters.turn_count == i + 1
        tokens = outcome.counters.tokens
        assert (tokens.input, tokens.output) == (7 * (i + 1), 3 * (i + 1))
        assert outcome.counters.cost == pytest.approx(0.5 * (i + 1))
    assert indexes == [1, 2, 3]
    assert [s.turn_index for s in await store.snapshots("s1")] == [1, 2, 3]
    plain = await store.append("s1", (build.message("u3"),))
    assert plain.turn_index is None
    assert plain.counters is not None and plain.counters.turn_count == 3
    assert await store.verify() == []


async def test_concurrent_appends_get_distinct_consecutive_turn_indexes(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1"))
    other = await second_store(store)
    turns = 20
    try:

        async def turn(writer: Store, name: str) -> tuple[str, int, tuple[int, ...]]:
            outcome = await writer.append(
                "s1",
                (build.message(f"{name}-u"), build.message(f"{name}-a", role="assistant")),
                usage=USAGE,
                snapshot=build.snapshot(1),
            )
            assert outcome.turn_index is not None
            return name, outcome.turn_index, outcome.seqs

        results = await asyncio.gather(
            *(turn(store if i % 2 else other, f"t{i}") for i in range(turns))
        )
    finally:
        await other.close()

    assert sorted(index for _, index, _ in results) == list(range(1, turns + 1))
    messages = await store.get_messages("s1")
    assert [m.message.seq for m in messages] == list(range(1, 2 * turns + 1))
    by_id = {m.id: m.message.seq for m in messages}
    for name, index, seqs in results:
        # the turn's messages are whole and in order; its snapshot is the index returned
        assert (by_id[f"{name}-u"], by_id[f"{name}-a"]) == seqs
        assert seqs[1] == seqs[0] + 1
        assert (await store.snapshots("s1"))[index - 1].turn_index == index
    # turn order is the order of their messages: one order every reader sees
    order = [index for _, index, _ in sorted(results, key=lambda r: r[2])]
    assert order == list(range(1, turns + 1))
    session = await store.get_session("s1")
    assert session.turn_count == turns
    assert (session.tokens.input, session.tokens.output) == (7 * turns, 3 * turns)
    assert await store.verify() == []


# -- sessions: several writers in one process ------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of each backend for sessions to share (PostgreSQL: a fresh one)."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return str(request.getfixturevalue("pg_database"))


def echo(request: LLMRequest) -> MockReply:
    """A reply naming every user message the model was shown."""
    said = [str(m["content"]) for m in request.messages if m["role"] == "user"]
    return MockReply(text="saw " + " | ".join(said), usage=USAGE)


async def test_two_sessions_on_one_id_take_turns_without_clashing(db_url: str) -> None:
    a = await MnesisSession.create(model=MODEL, db_path=db_url, provider=MockProvider(echo))
    b = await MnesisSession.load(a.id, db_path=db_url, provider=MockProvider(echo))
    try:
        await a.record("A1", "a1", tokens=USAGE)
        await b.record("B1", "b1", tokens=USAGE)
        reply_a = await a.send("A2")
        reply_b = await b.send("B2")
        await a.record("A3", "a3", tokens=USAGE)

        # each writer's next model call saw the other's turns
        assert reply_a.text == "saw A1 | B1 | A2"
        assert reply_b.text == "saw A1 | B1 | A2 | B2"
        texts = [m.text_content() for m in await a.messages()]
        assert texts == ["A1", "a1", "B1", "b1", "A2", reply_a.text, "B2", reply_b.text, "A3", "a3"]
        assert [s.turn_index for s in await b.history()] == [1, 2, 3, 4, 5]
        # the totals follow the store's, which count both writers
        assert (a.token_usage.input, a.token_usage.output) == (35, 15)
        assert await a.verify() == []
    finally:
        await a.close()
        await b.close()


# -- sessions: several processes -------------------------------------------------

WRITER = r"""
import asyncio, json, sys
from mnesis import MnesisSession, MockProvider, MockReply, TokenUsage

url, session_id, mode, prefix, turns = sys.argv[1:6]
turns = int(turns)
seen = []


def reply(request):
    users = [str(m["content"]) for m in request.messages if m["role"] == "user"]
    seen[:] = users
    return MockReply(text=f"re {users[-1]}", usage=TokenUsage(input=7, output=3))


async def turn(session, i):
    if mode == "send":
        await session.send(f"{prefix}-u{i}")
    else:
        usage = TokenUsage(input=7, output=3)
        await session.record(f"{prefix}-u{i}", f"{prefix}-a{i}", tokens=usage)


async def main():
    session = await MnesisSession.load(session_id, db_path=url, provider=MockProvider(reply))
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(turns - 1):
        await turn(session, i)
    print("waiting", flush=True)  # every writer's other turns are in before the last one
    sys.stdin.readline()
    await turn(session, turns - 1)
    if mode == "record":
        context = await session.context_for_next_turn()
        seen[:] = [str(m["content"]) for m in context if m["role"] == "user"]
    print(json.dumps({"seen": seen, "input_tokens": session.token_usage.input}), flush=True)
    await session.close()


asyncio.run(main())
"""


async def release(procs: list[Any], expect: bytes) -> None:
    """Wait until every process printed ``expect``, then let them all go on."""
    for proc in procs:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        if line != expect:
            raise AssertionError(f"{line!r}: {(await proc.stderr.read()).decode()}")
    for proc in procs:
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()


@pytest.mark.parametrize("mode", ["record", "send"])
async def test_processes_taking_turns_on_one_session_store_every_turn_once(
    db_url: str, mode: str
) -> None:
    writers, turns = 4, 25
    config = MnesisConfig.model_validate({"compaction": {"auto": False}})
    async with MnesisSession.open(model=MODEL, db_path=db_url, config=config) as session:
        session_id = session.id
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            db_url,
            session_id,
            mode,
            f"w{n}",
            str(turns),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(writers)
    ]
    await release(procs, b"ready\n")
    await release(procs, b"waiting\n")
    outcomes = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    reports = []
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out.decode().splitlines()[-1]))

    total = writers * turns
    session = await MnesisSession.load(session_id, db_path=db_url)
    try:
        messages = await session.messages()
        assert len(messages) == 2 * total
        assert [m.message.seq for m in messages] == list(range(1, 2 * total + 1))
        assert [s.turn_index for s in await session.history()] == list(range(1, total + 1))
        assert await session.verify() == []
        assert (session.token_usage.input, session.token_usage.output) == (7 * total, 3 * total)
        texts = [m.text_content() for m in messages]
        for n in range(writers):
            users = [t for t in texts if t.startswith(f"w{n}-u")]
            assert users == [f"w{n}-u{i}" for i in range(turns)]  # whole, in its own order
        if mode == "send":  # every reply kept, after its own user message
            replies = [t.removeprefix("re ") for t in texts if t.startswith("re ")]
            users = [t for t in texts if t.startswith("w")]
            assert sorted(replies) == sorted(users)
            assert all(texts.index(f"re {u}") > texts.index(u) for u in users)
        else:
            for i, text in enumerate(texts[::2]):  # a recorded turn is one append
                assert texts[2 * i + 1] == text.replace("-u", "-a")
        # every writer's last turn saw every other writer's earlier turns
        earlier = {f"w{n}-u{i}" for n in range(writers) for i in range(turns - 1)}
        for report in reports:
            assert earlier <= set(report["seen"])
            # its totals follow the store's, which count every writer's turns
            assert report["input_tokens"] >= 7 * (writers * (turns - 1) + 1)
    finally:
        await session.close()
