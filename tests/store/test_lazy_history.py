"""Loading a session reads its context, not its history (issue #13), on both backends.

Every statement either driver runs is recorded with the rows it returned, so a
test says what a ``load()`` read: the session row, its reply drafts and the
context view, never the turn snapshots nor the messages a summary replaced.
``session.history()`` (a list, as in mnesis 0.4.0) reads the stored turns the
first time it is asked for them, and still returns every one, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.llm.base import LLMRequest
from mnesis.session import embedding as session_embedding
from mnesis.store.postgres import dialect as pg_dialect
from mnesis.store.sql.statements import Stmt
from mnesis.store.sqlite import dialect as sqlite_dialect

MODEL = "openai/gpt-4o"
NO_AUTO = MnesisConfig.model_validate({"compaction": {"auto": False}})


def reply(request: LLMRequest) -> MockReply:
    return MockReply(text="a summary of what was said", usage=TokenUsage(input=9, output=4))


class Statements:
    """The statements run (on any connection, either backend) and the rows each returned."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def clear(self) -> None:
        self.seen.clear()

    def on(self, table: str) -> list[tuple[str, int]]:
        return [(sql, rows) for sql, rows in self.seen if f" {table} " in f"{sql} "]

    @property
    def snapshot_reads(self) -> list[int]:
        """The rows each read of turn snapshots returned."""
        return [rows for sql, rows in self.seen if "snapshot_json FROM turns" in sql]

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.seen)

    def note(self, stmt: Stmt, result: Any) -> None:
        self.seen.append((stmt.sql, len(result) if isinstance(result, list) else 1))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    # Count the session's own reads: no background embedding worker reading alongside.
    monkeypatch.setattr(session_embedding, "_embedders", {"auto": None})
    spy = Statements()
    sqlite_execute = sqlite_dialect._execute
    pg_execute = pg_dialect._execute

    def on_sqlite(conn: Any, stmt: Stmt) -> Any:
        result = sqlite_execute(conn, stmt)
        spy.note(stmt, result)
        return result

    async def on_postgres(conn: Any, stmt: Stmt) -> Any:
        result = await pg_execute(conn, stmt)
        spy.note(stmt, result)
        return result

    monkeypatch.setattr(sqlite_dialect, "_execute", on_sqlite)
    monkeypatch.setattr(pg_dialect, "_execute", on_postgres)
    yield spy


async def recorded(db_url: str, turns: int, *, compact: bool = False) -> str:
    """A closed session of ``turns`` recorded turns (compacted once at the end)."""
    async with MnesisSession.open(
        model=MODEL, db_path=db_url, config=NO_AUTO, provider=MockProvider(reply)
    ) as session:
        for n in range(turns):
            await session.record(f"question {n} " + "word " * 40, f"answer {n} " + "word " * 40)
        if compact:
            result = await session.compact()
            assert result.compacted_message_count > 0
        return session.id


async def test_load_reads_only_the_context_not_every_snapshot(
    db_url: str, statements: Statements
) -> None:
    session_id = await recorded(db_url, 40, compact=True)
    statements.clear()
    session = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    try:
        context = await session.context_for_next_turn()
        assert statements.on("turns") == []  # no snapshot of the 40 turns
        assert statements.on("summary_sources") == []  # nor what the summary covers
        entries = len(session._live.window.entries)
        assert 2 <= entries < 80 and len(context) == entries
        # The session row, its drafts, pins, the summary and one row per part in
        # the context: the 80 stored messages are not read.
        assert statements.rows <= entries + 8
    finally:
        await session.close()


async def test_history_reads_the_stored_turns_once_on_first_use(
    db_url: str, statements: Statements
) -> None:
    session_id = await recorded(db_url, 12)
    session = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    try:
        statements.clear()
        history = session.history()  # synchronous: the caller waits for the read
        assert [s.turn_index for s in history] == list(range(1, 13))
        assert statements.snapshot_reads == [12]
        statements.clear()
        assert session.history() == history  # kept: a stored turn never changes
        assert statements.seen == []
        assert await session.history() == history  # afresh, reading only later turns
        assert statements.snapshot_reads == [0]
        assert history == await session._store.snapshots(session_id)
    finally:
        await session.close()


async def test_history_after_load_holds_every_turn_in_order_with_another_writers(
    db_url: str,
) -> None:
    session_id = await recorded(db_url, 5)
    a = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    b = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    try:
        await a.record("a's question", "a's answer")  # turn 6
        await b.record("b's question", "b's answer")  # turn 7, unknown to a for now
        assert [s.turn_index for s in await a.history()] == list(range(1, 8))
        assert [s.turn_index for s in a.history()] == list(range(1, 7))
        await a.record("a again", "an answer")  # turn 8: a catches up with b's turn
        stored = await a._store.snapshots(session_id)
        assert [s.turn_index for s in stored] == list(range(1, 9))
        assert a.history() == stored == await a.history()
        # b's turn 7 followed a turn it had not seen: its write read that one.
        assert b.history() == stored[:7]
    finally:
        await a.close()
        await b.close()


async def test_history_of_a_session_loaded_without_turns_reads_nothing(
    db_url: str, statements: Statements
) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_url, config=NO_AUTO) as created:
        pass
    session = await MnesisSession.load(created.id, db_path=db_url)
    try:
        statements.clear()
        assert session.history() == [] and statements.seen == []
        await session.record("q", "a")
        assert [s.turn_index for s in session.history()] == [1]
        assert statements.snapshot_reads == []
    finally:
        await session.close()


async def test_a_loaded_session_catches_up_with_only_what_was_appended_since(
    db_url: str, statements: Statements
) -> None:
    session_id = await recorded(db_url, 20)
    a = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    b = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider(reply))
    try:
        await a.record("a's question", "a's answer")
        statements.clear()
        context = await b.context_for_next_turn()
        assert len(context) == 42 and context[-1]["content"] == "a's answer"
        # The view's counters and a's two messages: not the 40 b loaded already.
        assert statements.rows <= 6
        assert context == await fresh_context(session_id, db_url)
    finally:
        await a.close()
        await b.close()


async def fresh_context(session_id: str, db_url: str) -> list[dict[str, Any]]:
    """The next turn's context as a freshly loaded session sees it."""
    async with await MnesisSession.load(session_id, db_path=db_url) as session:
        return await session.context_for_next_turn()
