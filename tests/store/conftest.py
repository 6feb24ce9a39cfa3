"""Fixtures for the storage contract suite.

``store`` is parametrized over the backends; every test that takes it runs once
per backend. The PostgreSQL runs get a fresh database each
(``mnesis_test_<random>``, dropped afterwards) on the server named by
``MNESIS_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
the maintenance database). Without a reachable server they are skipped, except
when ``CI=true``: there they fail.

``build`` is a small factory for the values the store takes (sessions,
messages, parts, tool results, snapshots), so tests stay short and readable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pg_databases import create_pg_database, drop_pg_database, pg_url

from mnesis.models.message import (
    FileRefPart,
    MessagePart,
    MessageStatus,
    Role,
    TextPart,
    TokenUsage,
    ToolPart,
)
from mnesis.models.results import ContextBreakdown, TurnSnapshot
from mnesis.store import (
    NewMessage,
    NewPart,
    PostgresStore,
    SessionRecord,
    SQLiteStore,
    Store,
    ToolResult,
)
from mnesis.store.base import NewSummary

BACKENDS = ["sqlite", "postgres"]
class Build:
    """Builders for store inputs with sensible defaults; override what matters."""

    @staticmethod
    def session(
        session_id: str = "s1",
        *,
        parent_id: str | None = None,
        model: str = "test-model",
        agent: str = "test-agent",
        system_prompt: str = "You are a test.",
        config_json: str = '{"k":1}',
        created_at: float = 1_700_000_000.0,
    ) -> SessionRecord:
        return SessionRecord(
            id=session_id,
            model=model,
            agent=agent,
            parent_id=parent_id,
            system_prompt=system_prompt,
            config_json=config_json,
            created_at=created_at,
        )

    @staticmethod
    def part(part: MessagePart, token_count: int = 5, result_token_count: int = 0) -> NewPart:
        return NewPart(part=part, token_count=token_count, result_token_count=result_token_count)

    @staticmethod
    def text(text: str, token_count: int = 5) -> NewPart:
        return NewPart(part=TextPart(text=text), token_count=token_count)

    @staticmethod
    def tool_call(
        call_id: str,
        *,
        name: str = "lookup",
        input: dict[str, Any] | None = None,
        token_count: int = 7,
    ) -> NewPart:
        return NewPart(
            part=ToolPart(tool_name=name, tool_call_id=call_id, input=input or {"q": call_id}),
            token_count=token_count,
        )

    @staticmethod
    def file_ref(content_id: str = "file-1", path: str = "/data/report.csv") -> NewPart:
        return NewPart(
            part=FileRefPart(
                content_id=content_id,
                path=path,
                file_type="csv",
                token_count=12_345,
                exploration_summary="columns: a, b, c; 1000 rows",
            ),
            token_count=40,
        )

    @staticmethod
    def message(
        message_id: str,
        *parts: NewPart,
        text: str | None = None,
        role: Role = "user",
        status: MessageStatus = MessageStatus.COMPLETE,
        created_at: float = 1_700_000_100.0,
        model: str | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
        tokens: TokenUsage | None = None,
        cost: float = 0.0,
    ) -> NewMessage:
        """A message; with no parts given, one text part (``text`` or a default)."""
        if not parts:
            parts = (Build.text(text if text is not None else f"text of {message_id}"),)
        return NewMessage(
            id=message_id,
            role=role,
            parts=tuple(parts),
            created_at=created_at,
            model=model,
            status=status,
            finish_reason=finish_reason,
            error=error,
            tokens=tokens or TokenUsage(),
            cost=cost,
        )

    @staticmethod
    def result(
        call_id: str, output: str | None = "ok", error: str | None = None, token_count: int = 3
    ) -> ToolResult:
        return ToolResult(tool_call_id=call_id, output=output, error=error, token_count=token_count)

    @staticmethod
    def summary(summary_id: str, *sources: str, text: str = "they talked") -> NewSummary:
        """A leaf summary of messages ``sources``, numbered 1..n."""
        return NewSummary(
            id=summary_id,
            kind="leaf",
            depth=0,
            level_used=1,
            text=text,
            token_count=4,
            sources=sources,
            first_seq=1,
            last_seq=len(sources),
            message_count=len(sources),
            created_at=1_700_000_200.0,
        )

    @staticmethod
    def snapshot(turn_index: int, *, total: int = 100) -> TurnSnapshot:
        return TurnSnapshot(
            turn_index=turn_index,
            role="assistant",
            context_tokens=ContextBreakdown(system_prompt=10, messages=total - 10, total=total),
        )


@pytest.fixture
def build() -> type[Build]:
    return Build


@pytest.fixture
def open_store_at() -> Callable[[str], Awaitable[Store]]:
    """Open a store of its own on ``db_url``'s database, as another process would."""

    async def open_at(url: str) -> Store:
        store = PostgresStore(url) if url.startswith("postgresql") else SQLiteStore(url)
        return await store.open()

    return open_at


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, open, empty store of each backend; closed (and dropped) after the test."""
    if request.param == "sqlite":
        opened: Store = await SQLiteStore(tmp_path / "contract" / "mnesis.db").open()
        try:
            yield opened
        finally:
            await opened.close()
        return
    assert request.param == "postgres", f"unknown backend {request.param!r}"
    name = await create_pg_database()
    try:
        opened = await PostgresStore(pg_url(name)).open()
        try:
            yield opened
        finally:
            await opened.close()
    finally:
        await drop_pg_database(name)


@pytest.fixture
def raw_sql(store: Store) -> Iterator[Callable[[str, tuple[Any, ...]], None]]:
    """Run one raw statement on the store's database behind its back (to tamper).

    SQL is written with ``?`` marks; for PostgreSQL they become ``$1, $2 ...`` and
    foreign keys are not enforced for the statement (as in a plain sqlite3
    connection), so tampering can leave orphans.
    """
    if isinstance(store, SQLiteStore):

        def run(sql: str, params: tuple[Any, ...] = ()) -> None:
            conn = sqlite3.connect(store.path)
            try:
                conn.execute(sql, params)
                conn.commit()
            finally:
                conn.close()

        yield run
        return
    if not isinstance(store, PostgresStore):
        pytest.skip("raw tampering is implemented for SQLite and PostgreSQL only")
    import asyncpg

    async def tamper(sql: str, params: tuple[Any, ...]) -> None:
        for n in range(1, len(params) + 1):
            sql = sql.replace("?", f"${n}", 1)
        conn = await asyncpg.connect(store.url)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(sql, *params)
        finally:
            await conn.close()

    def run_pg(sql: str, params: tuple[Any, ...] = ()) -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, tamper(sql, params)).result()

    yield run_pg
