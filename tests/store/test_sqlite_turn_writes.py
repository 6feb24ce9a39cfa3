"""SQLite: a turn's write runs on the event loop when it can, and never stalls it when it cannot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mnesis.errors import SessionNotFoundError
from mnesis.models.message import TextPart
from mnesis.store import SQLiteStore
from mnesis.store.records import NewMessage, NewPart


async def test_a_turn_write_held_up_by_another_process_waits_off_the_loop(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "held.db"
    store = await SQLiteStore(db).open()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        await store.create_session(build.session("s1"))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        running = asyncio.create_task(ticker())
        append = asyncio.create_task(store.append("s1", (build.message("m1"),)))
        await asyncio.sleep(0.3)
        assert not append.done()  # it waits for the lock ...
        assert ticks >= 5  # ... without blocking the loop (blocked, it would tick once)
        other.execute("COMMIT")
        outcome = await asyncio.wait_for(append, 10)
        running.cancel()

        assert outcome.seqs == (1,)
        assert [m.id for m in await store.get_messages("s1")] == ["m1"]
    finally:
        other.close()
        await store.close()


async def test_a_failed_turn_write_leaves_no_transaction_open(tmp_path: Path, build: Any) -> None:
    store = await SQLiteStore(tmp_path / "failed.db").open()
    try:
        await store.create_session(build.session("s1"))
        try:
            await store.append("missing", (build.message("m0"),))
        except SessionNotFoundError:
            pass
        else:
            raise AssertionError("an append to a missing session must fail")
        await store.append("s1", (build.message("m1"),))
        assert [m.id for m in await store.get_messages("s1")] == ["m1"]
    finally:
        await store.close()


async def _main_file_growth(db: Path, build: Any, checkpoint_every: int) -> int:
    store = await SQLiteStore(db).open()
    store.CHECKPOINT_EVERY = checkpoint_every
    try:
        await store.create_session(build.session("s1"))
        before = db.stat().st_size
        for i in range(60):
            await store.append("s1", (build.message(f"m{i}", text="words " * 400),))
        for _ in range(100):  # a checkpoint runs on its own thread: give it time
            if db.stat().st_size != before or checkpoint_every > 60:
                break
            await asyncio.sleep(0.05)
        return db.stat().st_size - before
    finally:
        await store.close()


async def test_writes_on_the_loop_are_checkpointed_into_the_file_by_the_thread(
    tmp_path: Path, build: Any
) -> None:
    # Our connection never checkpoints inside a commit; its own thread does it
    # every CHECKPOINT_EVERY commits, so the main file takes the pages in.
    assert await _main_file_growth(tmp_path / "never.db", build, 10_000) == 0
    assert await _main_file_growth(tmp_path / "often.db", build, 5) > 60 * 1000


async def test_a_large_turn_write_stays_off_the_event_loop(
    tmp_path: Path, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SQLiteStore(tmp_path / "large.db").open()
    on_loop: list[int] = []
    write_now = store._write_now

    def spy(conn: sqlite3.Connection, steps: Any) -> Any:
        on_loop.append(1)
        return write_now(conn, steps)

    monkeypatch.setattr(store, "_write_now", spy)
    try:
        await store.create_session(build.session("s1"))
        small = build.message("m1")
        large = NewMessage(
            id="m2",
            role="user",
            parts=(NewPart(TextPart(text="x " * 40_000), token_count=40_000),),
            created_at=1_700_000_100.0,
        )
        await store.append("s1", (small,))
        assert on_loop == [1]  # a turn's usual write runs right on the loop
        await store.append("s1", (large,))
        assert on_loop == [1]  # a large one goes to the thread, the loop stays free
        assert [m.id for m in await store.get_messages("s1")] == ["m1", "m2"]
    finally:
        await store.close()
