"""The compaction lock of a process that died is free at once, on both backends.

A holder is a real ``python -c`` process that takes the lock, reports
``held`` and sleeps; the test SIGKILLs it (no ``finally`` runs, nothing is
given back) and takes the lock itself. SQLite's lease row names its holder's
process; PostgreSQL's advisory lock ends with the holder's connection.

And a turn at the hard limit never sends a request past the usable budget:
with a dead compactor it takes the lock over and compacts at once; with a live
one that does not finish in time it truncates deterministically itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.llm.base import LLMRequest
from mnesis.store import SQLiteStore, Store
from mnesis.store.owners import ProcessOwner, is_alive, process_start, this_process
from mnesis.tokens import TokenEstimator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

MODEL = "openai/gpt-4o"

HOLDER = r"""
import asyncio, sys
from mnesis.store import PostgresStore, SQLiteStore

url, session_id = sys.argv[1:3]


async def main():
    store = PostgresStore(url) if url.startswith("postgresql") else SQLiteStore(url)
    await store.open()
    async with store.compaction_lock(session_id) as held:
        print("held" if held else "busy", flush=True)
        await asyncio.sleep(3600)


asyncio.run(main())
"""


def store_url(store: Store) -> str:
    return store.path if isinstance(store, SQLiteStore) else store.url


async def spawn_holder(url: str, session_id: str) -> Any:
    """A process holding the compaction lock of ``session_id`` until killed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        url,
        session_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    if line != b"held\n":
        proc.kill()
        _, err = await proc.communicate()
        raise AssertionError(f"holder did not take the lock: {line!r} {err.decode()}")
    return proc


async def take(store: Store, session_id: str) -> bool:
    async with store.compaction_lock(session_id) as held:
        return held


async def test_the_lock_of_a_killed_holder_is_taken_over_at_once(store: Store) -> None:
    holder = await spawn_holder(store_url(store), "s1")
    try:
        assert not await take(store, "s1")  # a live holder keeps it
        assert await take(store, "s2")  # other sessions are free
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    started = time.monotonic()
    # PostgreSQL frees the lock once the server has seen the connection close.
    while not await take(store, "s1"):
        assert time.monotonic() - started < 5, "the dead holder's lock was never freed"
        await asyncio.sleep(0.05)
    assert time.monotonic() - started < 5


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore(tmp_path / "leases.db").open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def put_lease(sqlite_store: SQLiteStore) -> Callable[..., None]:
    """Write a lease row behind the store's back, as another process would have."""

    def put(
        session_id: str,
        *,
        host: str,
        pid: int,
        started: str = "",
        heartbeat_age: float = 0.0,
        expires_in: float = 600.0,
    ) -> None:
        now = time.time()
        conn = sqlite3.connect(sqlite_store.path)
        try:
            conn.execute(
                "INSERT OR REPLACE INTO compaction_leases "
                "(session_id, holder, expires_at, host, pid, started, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, f"{pid}:x", now + expires_in, host, pid, started, now - heartbeat_age),
            )
            conn.commit()
        finally:
            conn.close()

    return put


async def test_a_lease_on_another_host_is_kept_while_its_heartbeat_is_fresh(
    sqlite_store: SQLiteStore, put_lease: Callable[..., None]
) -> None:
    put_lease("fresh", host="elsewhere.example", pid=4242, heartbeat_age=5)
    put_lease("stale", host="elsewhere.example", pid=4242, heartbeat_age=10_000)
    assert not await take(sqlite_store, "fresh")
    assert await take(sqlite_store, "stale")


async def test_a_reused_pid_does_not_keep_a_dead_holders_lease(
    sqlite_store: SQLiteStore, put_lease: Callable[..., None]
) -> None:
    me = this_process()
    # Our own pid, but a different start time: the holder was an earlier process.
    put_lease("reused", host=me.host, pid=me.pid, started="1")
    put_lease("ours", host=me.host, pid=me.pid, started=me.started)
    assert await take(sqlite_store, "reused")
    assert not await take(sqlite_store, "ours")


async def test_a_lease_from_before_holders_were_named_waits_for_its_expiry(
    sqlite_store: SQLiteStore, put_lease: Callable[..., None]
) -> None:
    put_lease("legacy", host="", pid=0, heartbeat_age=10_000)
    put_lease("expired", host="", pid=0, heartbeat_age=10_000, expires_in=-1)
    assert not await take(sqlite_store, "legacy")
    assert await take(sqlite_store, "expired")


async def test_a_held_lease_is_renewed_by_its_heartbeat(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteStore, "HEARTBEAT_SECONDS", 0.05)

    def heartbeat() -> float:
        conn = sqlite3.connect(sqlite_store.path)
        try:
            row = conn.execute("SELECT heartbeat_at FROM compaction_leases").fetchone()
            return float(row[0])
        finally:
            conn.close()

    async with sqlite_store.compaction_lock("s1") as held:
        assert held
        first = heartbeat()
        await asyncio.sleep(0.3)
        assert heartbeat() > first
    conn = sqlite3.connect(sqlite_store.path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM compaction_leases").fetchone() == (0,)
    finally:
        conn.close()


def test_process_liveness() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.host == socket.gethostname()
    assert is_alive(me) is True
    assert process_start(os.getpid()) == me.started
    assert is_alive(ProcessOwner(me.host, 2**22 + 12345, "")) is False  # beyond pid_max
    assert is_alive(ProcessOwner("elsewhere.example", me.pid, me.started)) is None


async def test_a_held_lock_is_refused_to_another_taker_in_the_same_process(
    store: Store,
) -> None:
    """On PostgreSQL the lock lives on its own connection, so the pool's other
    connections see it taken; on SQLite the lease names its holder, not the process."""
    async with store.compaction_lock("s1") as held:
        assert held
        assert not await take(store, "s1")
    assert await take(store, "s1")


# -- the hard limit, with a compactor that died or lingers ---------------------------------


def small_config(**compaction: Any) -> MnesisConfig:
    """A 4,000-token window: usable 3,000."""
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500, **compaction},
        }
    )


class Model:
    """Short answers, short summaries; keeps the turn requests it was sent."""

    def __init__(self) -> None:
        self.turn_requests: list[LLMRequest] = []

    def __call__(self, request: LLMRequest) -> str:
        content = str(request.messages[-1]["content"])
        if "<transcript>" in content or content.startswith("Summarise tersely"):
            return "Summary: numbered reports, all nominal."
        self.turn_requests.append(request)
        return "noted"


def request_tokens(request: LLMRequest) -> int:
    estimator = TokenEstimator(MODEL)
    return sum(estimator.estimate(str(m.get("content") or "")) + 4 for m in request.messages)


async def session_past_the_hard_limit(db_url: str) -> str:
    """A stored session whose context is past its usable budget (compaction was off)."""
    async with MnesisSession.open(
        model=MODEL, db_path=db_url, config=small_config(auto=False), provider=MockProvider()
    ) as session:
        for i in range(24):
            await session.record(f"Report {i}: " + "all systems nominal. " * 30, "Noted.")
        assert (await session.context_breakdown()).total > session.usable_tokens
        return session.id


async def test_a_killed_compactors_lock_does_not_stall_the_hard_limit(db_url: str) -> None:
    session_id = await session_past_the_hard_limit(db_url)
    url = db_url if db_url.startswith("postgresql") else str(Path(db_url))
    holder = await spawn_holder(url, session_id)
    holder.send_signal(signal.SIGKILL)
    await holder.wait()
    await asyncio.sleep(0.2)  # PostgreSQL: let the server see the connection close

    model = Model()
    session = await MnesisSession.load(
        session_id,
        db_path=db_url,
        config=small_config(summary_timeout=30),
        provider=MockProvider(model),
    )
    try:
        started = time.monotonic()
        result = await session.send("status?")
        assert time.monotonic() - started < 10  # not summary_timeout x 2
        assert result.compaction_result is not None and not result.compaction_result.skipped
        assert [request_tokens(r) for r in model.turn_requests] == [
            request_tokens(model.turn_requests[0])
        ]
        assert request_tokens(model.turn_requests[0]) <= session.usable_tokens
    finally:
        await session.close()


async def test_a_compactor_that_never_finishes_cannot_push_a_turn_past_the_budget(
    db_url: str, open_store_at: Callable[[str], Awaitable[Store]]
) -> None:
    session_id = await session_past_the_hard_limit(db_url)
    model = Model()
    other = await open_store_at(db_url)  # another "process": its lock is held throughout
    try:
        async with other.compaction_lock(session_id) as held:
            assert held
            session = await MnesisSession.load(
                session_id,
                db_path=db_url,
                config=small_config(summary_timeout=0.2),
                provider=MockProvider(model),
            )
            try:
                result = await session.send("status?")
                assert result.compaction_result is not None
                assert result.compaction_result.level_used == 3  # no model, no lock needed
                assert len(model.turn_requests) == 1
                assert request_tokens(model.turn_requests[0]) <= session.usable_tokens
                assert await session.verify() == []
            finally:
                await session.close()
    finally:
        await other.close()
