"""A reply the model produced is never dropped, and a session's totals follow the store.

The store is made to fail the reply's append by wrapping the real store's
``append`` (the one every session of the database shares in this process);
the session itself is not mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mnesis import MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.errors import MnesisStoreError
from mnesis.models.config import MnesisConfig
from mnesis.models.message import MessageStatus
from mnesis.store import Store, acquire_store, release_store

MODEL = "openai/gpt-4o"
REPLY = "the answer, paid for"
USAGE = TokenUsage(input=11, output=4)


@pytest.fixture
async def shared_store(db_path: str) -> AsyncIterator[Store]:
    """The open store the sessions of ``db_path`` use in this process."""
    config = MnesisConfig()
    store = await acquire_store(db_path, config.store)
    try:
        yield store
    finally:
        await release_store(store)


def failing_appends(
    monkeypatch: pytest.MonkeyPatch, store: Store, fails: Callable[[dict[str, Any]], bool]
) -> list[str]:
    """Make ``store.append`` raise for the calls ``fails`` picks; returns their errors."""
    real = store.append
    raised: list[str] = []

    async def append(session_id: str, messages: Any, **kwargs: Any) -> Any:
        if fails({"messages": messages, **kwargs}):
            raised.append(f"disk full ({len(raised) + 1})")
            raise MnesisStoreError(raised[-1])
        return await real(session_id, messages, **kwargs)

    monkeypatch.setattr(store, "append", append)
    return raised


def provider() -> MockProvider:
    return MockProvider(lambda request: MockReply(text=REPLY, usage=USAGE))


async def test_a_reply_the_store_refuses_as_a_turn_is_kept_as_failed_with_its_text(
    db_path: str, shared_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider()) as session:
        await session.send("first")
        raised = failing_appends(
            monkeypatch, shared_store, lambda call: call.get("snapshot") is not None
        )

        with pytest.raises(MnesisStoreError, match=r"disk full \(1\)") as err:
            await session.send("second")
        monkeypatch.undo()

        stored = await session.messages()
        kept = stored[-1]
        assert [m.text_content() for m in stored] == ["first", REPLY, "second", REPLY]
        assert kept.message.status == MessageStatus.FAILED
        assert kept.message.error is not None and "disk full (1)" in kept.message.error.message
        assert kept.message.tokens.input == USAGE.input  # what the call cost is kept too
        assert f"kept as failed message {kept.id}" in "\n".join(err.value.__notes__)
        assert raised == ["disk full (1)"]
        # the paid-for tokens count; the turn does not
        assert session.token_usage.input == 2 * USAGE.input
        assert [s.turn_index for s in await session.history()] == [1]

        await session.send("third")  # the session goes on; the failed reply is not in context
        context = await session.context_for_next_turn()
        assert [m["content"] for m in context] == ["first", REPLY, "second", "third", REPLY]
        assert [s.turn_index for s in await session.history()] == [1, 2]
        assert await session.verify() == []


async def test_a_reply_that_cannot_be_stored_at_all_is_named_in_the_error(
    db_path: str, shared_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider()) as session:
        # the user message goes in; every append after it fails
        failing_appends(
            monkeypatch,
            shared_store,
            lambda call: any(m.role == "assistant" for m in call["messages"]),
        )

        with pytest.raises(MnesisStoreError) as err:
            await session.send("hello")
        monkeypatch.undo()

        message = str(err.value)
        assert message.startswith("the model's reply was not stored: message msg")
        assert f"({len(REPLY)} characters of text, 0 tool calls)" in message
        assert "as a turn: MnesisStoreError: disk full (1)" in message
        assert "as a failed message: MnesisStoreError: disk full (2)" in message
        assert [m.text_content() for m in await session.messages()] == ["hello"]
        assert await session.verify() == []


async def test_totals_follow_turns_another_session_object_wrote(db_path: str) -> None:
    a = await MnesisSession.create(model=MODEL, db_path=db_path, provider=provider())
    b = await MnesisSession.load(a.id, db_path=db_path, provider=provider())
    try:
        await a.send("from a")
        await b.send("from b")
        await b.record("b again", "ok", tokens=USAGE)
        await a.record("a again", "ok", tokens=USAGE)
        assert a.token_usage.input == b.token_usage.input + USAGE.input == 4 * USAGE.input
        fresh = await MnesisSession.load(a.id, db_path=db_path, provider=provider())
        assert (a.token_usage, a.cost) == (fresh.token_usage, fresh.cost)
        assert b.cost < a.cost
        assert [s.turn_index for s in await a.history()] == [1, 2, 3, 4]
        await fresh.close()
    finally:
        await a.close()
        await b.close()
