"""Fixtures for the storage contract suite.

``store`` is parametrized over the backends; every test that takes it runs once
per backend. To add PostgreSQL, append ``"postgres"`` to :data:`BACKENDS` and
teach :func:`_open_backend` how to open (and :func:`raw_sql` how to tamper with)
a fresh, empty database.

``build`` is a small factory for the values the store takes (sessions,
messages, parts, tool results, snapshots), so tests stay short and readable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore, Store, ToolResult

BACKENDS = ["sqlite"]


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
    def snapshot(turn_index: int, *, total: int = 100) -> TurnSnapshot:
        return TurnSnapshot(
            turn_index=turn_index,
            role="assistant",
            context_tokens=ContextBreakdown(system_prompt=10, messages=total - 10, total=total),
        )


@pytest.fixture
def build() -> type[Build]:
    return Build


async def _open_backend(name: str, tmp_path: Path) -> Store:
    if name == "sqlite":
        return await SQLiteStore(tmp_path / "contract" / "mnesis.db").open()
    raise AssertionError(f"unknown backend {name!r}")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, open, empty store of each backend; closed after the test."""
    opened = await _open_backend(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def raw_sql(store: Store) -> Iterator[Callable[[str, tuple[Any, ...]], None]]:
    """Run one raw statement on the store's database behind its back (to tamper).

    Only for backends where that is simple; others skip the test.
    """
    if not isinstance(store, SQLiteStore):
        pytest.skip("raw tampering is implemented for SQLite only")

    def run(sql: str, params: tuple[Any, ...] = ()) -> None:
        conn = sqlite3.connect(store.path)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    yield run
