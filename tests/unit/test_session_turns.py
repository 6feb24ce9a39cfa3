"""Turns through the session facade, with the mock provider and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest

from mnesis import (
    MnesisConfig,
    MnesisEvent,
    MnesisSession,
    MockProvider,
    MockReply,
    SessionClosedError,
    SessionNotFoundError,
    TextPart,
    TokenUsage,
)
from mnesis.errors import ConfigError, InvalidInputError, LLMPermanentError, LLMTransientError
from mnesis.llm.base import LLMRequest, StreamChunk
from mnesis.models.config import RetryConfig, SessionConfig

MODEL = "anthropic/claude-opus-4-6"


def last_user_text(request: LLMRequest) -> str:
    return next(m["content"] for m in reversed(request.messages) if m["role"] == "user")


async def test_send_persists_both_messages_and_returns_provider_usage(db_path: str) -> None:
    provider = MockProvider(
        lambda r: MockReply(text="hi there", usage=TokenUsage(input=11, output=3))
    )
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as session:
        result = await session.send("hello")
        assert result.text == "hi there"
        assert result.tokens == TokenUsage(input=11, output=3)
        assert result.tokens.effective_total() == 14
        assert result.finish_reason == "stop"
        history = await session.messages()
        assert [m.role for m in history] == ["user", "assistant"]
        assert history[1].text_content() == "hi there"
        assert history[1].id == result.message_id
        assert session.token_usage.effective_total() == 14


async def test_model_sees_earlier_turns(db_path: str) -> None:
    def recall(request: LLMRequest) -> str:
        said = " ".join(m["content"] for m in request.messages if m["role"] == "user")
        return "Alice" if "My name is Alice" in said and "name?" in said else "ok"

    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(recall)
    ) as session:
        await session.send("My name is Alice.")
        result = await session.send("What's my name?")
        assert result.text == "Alice"
        context = await session.context_for_next_turn(include_system=True)
        assert context[0] == {"role": "system", "content": "You are a helpful assistant."}
        assert [m["role"] for m in context[1:]] == ["user", "assistant"] * 2


async def test_load_resumes_model_prompt_history_and_counters(db_path: str) -> None:
    provider = MockProvider(lambda r: "noted")
    session = await MnesisSession.create(
        model=MODEL, system_prompt="Be terse.", db_path=db_path, provider=provider
    )
    await session.send("Remember: the secret code is 42.")
    usage = session.token_usage
    await session.close()

    def answer(request: LLMRequest) -> str:
        # Anthropic models get the stable prefix marked for prompt caching.
        assert request.messages[0]["content"] == [
            {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}
        ]
        assert any("secret code is 42" in str(m["content"]) for m in request.messages)
        return "The secret code is 42."

    resumed = await MnesisSession.load(session.id, db_path=db_path, provider=MockProvider(answer))
    assert resumed.model == MODEL
    assert resumed.token_usage == usage
    result = await resumed.send("What was the secret code?")
    assert result.text == "The secret code is 42."
    assert len(await resumed.messages()) == 4
    await resumed.close()


async def test_unknown_session_id_raises_session_not_found(db_path: str) -> None:
    session = await MnesisSession.create(model=MODEL, db_path=db_path, provider=MockProvider())
    await session.close()
    with pytest.raises(SessionNotFoundError, match="sess_missing"):
        await MnesisSession.load("sess_missing", db_path=db_path)


async def test_closed_session_refuses_turns_and_close_is_idempotent(db_path: str) -> None:
    session = await MnesisSession.create(model=MODEL, db_path=db_path, provider=MockProvider())
    await session.close()
    await session.close()
    with pytest.raises(SessionClosedError, match="closed"):
        await session.send("hello")
    with pytest.raises(SessionClosedError):
        await session.record("a", "b")


async def test_impossible_budget_is_a_value_error_naming_the_field(db_path: str) -> None:
    config = MnesisConfig(model_overrides={"context_limit": 8_000, "max_output_tokens": 1_000})
    with pytest.raises(ValueError, match="compaction_output_budget") as info:
        await MnesisSession.create(model=MODEL, config=config, db_path=db_path)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_overrides": {"context_limit": -1}},
        {"model_overrides": {"context_window": 10}},
        {"compaction": {"soft_threshold_fraction": 1.5}},
        {"session": {"doom_loop_threshold": 0}},
    ],
)
def test_invalid_config_values_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MnesisConfig.model_validate(kwargs)


@pytest.mark.parametrize("bad", ["", "   ", 42, [{"type": "unknown"}]])
async def test_bad_messages_get_clear_errors_and_store_nothing(db_path: str, bad: Any) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        with pytest.raises(InvalidInputError):
            await s.send(bad)
        assert await s.messages() == []


async def test_stream_yields_deltas_live_before_the_model_finishes(db_path: str) -> None:
    provider = MockProvider(lambda r: "one two three four five six", chunks=6, chunk_delay=0.05)
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as session:
        start = time.perf_counter()
        arrivals: list[float] = []
        chunks: list[str] = []
        final = None
        async for event in session.stream("go"):
            if event.type == "text_delta":
                arrivals.append(time.perf_counter() - start)
                chunks.append(event.text)
            else:
                final = event.result
        assert final is not None
        assert "".join(chunks) == final.text
        assert len(chunks) == 6
        # The first delta arrived well before the last one was produced.
        assert arrivals[-1] - arrivals[0] >= 0.2


async def test_the_last_delta_reaches_the_consumer_before_the_reply_is_stored(
    db_path: str,
) -> None:
    provider = MockProvider(lambda r: "one two three", chunks=3)  # no pause after the last
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as session:
        order: list[str] = []
        session.subscribe(
            MnesisEvent.MESSAGE_CREATED,
            lambda e, p: order.append(f"stored {p['role']}"),
        )
        async for event in session.stream("go"):
            order.append(event.type)
        assert order == [
            "stored user",
            "text_delta",
            "text_delta",
            "text_delta",
            "stored assistant",
            "turn_complete",
        ]


async def test_abandoned_stream_still_persists_turn(db_path: str) -> None:
    provider = MockProvider(lambda r: "a b c d e f g h", chunks=8, chunk_delay=0.01)
    session = await MnesisSession.create(model=MODEL, db_path=db_path, provider=provider)
    async for event in session.stream("start"):
        assert event.type == "text_delta"
        break
    await session.close()  # waits for the abandoned turn
    reopened = await MnesisSession.load(session.id, db_path=db_path, provider=provider)
    history = await reopened.messages()
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[1].text_content() == "a b c d e f g h"
    assert reopened.token_usage.effective_total() > 0
    assert len(await reopened.history()) == 1
    await reopened.close()


async def test_cancelled_stream_consumer_does_not_lose_the_turn(db_path: str) -> None:
    provider = MockProvider(lambda r: "x" * 40, chunks=8, chunk_delay=0.02)
    session = await MnesisSession.create(model=MODEL, db_path=db_path, provider=provider)

    async def consume() -> None:
        async for _ in session.stream("start"):
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()
    reopened = await MnesisSession.load(session.id, db_path=db_path, provider=provider)
    history = await reopened.messages()
    assert history[-1].text_content() == "x" * 40
    assert history[-1].message.status == "complete"
    await reopened.close()


async def test_on_part_receives_text_parts_live_and_its_error_does_not_lose_turn(
    db_path: str,
) -> None:
    provider = MockProvider(lambda r: "alpha beta gamma", chunks=3)
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as session:
        seen: list[str] = []

        async def on_part(part: Any) -> None:
            assert isinstance(part, TextPart)
            seen.append(part.text)

        result = await session.send("hi", on_part=on_part)
        assert "".join(seen) == result.text

        def failing(part: Any) -> None:
            raise RuntimeError("consumer broke")

        with pytest.raises(RuntimeError, match="consumer broke"):
            await session.send("again", on_part=failing)
        history = await session.messages()
        assert len(history) == 4
        assert history[-1].text_content() == "alpha beta gamma"


class ExplodingProvider:
    """Streams some text, then fails like a dropped connection."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def stream(self, request: LLMRequest) -> Any:
        yield StreamChunk(text="partial ")
        raise self.error


async def test_provider_error_mid_stream_marks_reply_failed_and_uncounted(db_path: str) -> None:
    session = await MnesisSession.create(
        model=MODEL, db_path=db_path, provider=ExplodingProvider(LLMTransientError("boom"))
    )
    with pytest.raises(LLMTransientError, match="boom"):
        await session.send("hello")
    history = await session.messages()
    assert [m.role for m in history] == ["user", "assistant"]
    failed = history[1].message
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "api_error"
    assert "boom" in failed.error.message
    assert history[1].text_content() == "partial "
    assert session.token_usage.effective_total() == 0
    assert await session.history() == []
    # The failed reply is not part of the next context; the user message is.
    context = await session.context_for_next_turn()
    assert [m["role"] for m in context] == ["user"]
    assert await session.verify() == []
    await session.close()


async def test_unknown_provider_exception_becomes_llm_error(db_path: str) -> None:
    session = await MnesisSession.create(
        model=MODEL, db_path=db_path, provider=ExplodingProvider(KeyError("weird"))
    )
    with pytest.raises(LLMPermanentError, match="KeyError"):
        await session.send("hello")
    assert (await session.messages())[1].message.status == "failed"
    await session.close()


async def test_transient_errors_are_retried_with_llm_retry_events(db_path: str) -> None:
    attempts = 0

    class Flaky:
        async def stream(self, request: LLMRequest) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise LLMTransientError("rate limited")
            yield StreamChunk(text="finally", finish_reason="stop")

    config = MnesisConfig(
        session=SessionConfig(retry=RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.02))
    )
    retries: list[dict[str, Any]] = []
    session = await MnesisSession.create(
        model=MODEL, db_path=db_path, provider=Flaky(), config=config
    )
    session.subscribe(MnesisEvent.LLM_RETRY, lambda e, p: retries.append(p))
    result = await session.send("hi")
    assert result.text == "finally"
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["delay_seconds"] <= 0.02 for r in retries)
    await session.close()


async def test_permanent_errors_are_not_retried(db_path: str) -> None:
    calls = 0

    class Denied:
        async def stream(self, request: LLMRequest) -> Any:
            nonlocal calls
            calls += 1
            raise LLMPermanentError("invalid api key")
            yield StreamChunk()

    config = MnesisConfig(session=SessionConfig(retry=RetryConfig(max_retries=5, base_delay=0)))
    session = await MnesisSession.create(
        model=MODEL, db_path=db_path, provider=Denied(), config=config
    )
    with pytest.raises(LLMPermanentError):
        await session.send("hi")
    assert calls == 1
    await session.close()


async def test_events_carry_typed_payloads_and_handler_errors_do_not_break_turns(
    db_path: str,
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def async_handler(event: MnesisEvent, payload: dict[str, Any]) -> None:
        seen.append((event.value, payload))

    def broken(event: MnesisEvent, payload: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    session = await MnesisSession.create(model=MODEL, db_path=db_path, provider=MockProvider())
    session.subscribe(MnesisEvent.MESSAGE_CREATED, async_handler)
    session.subscribe(MnesisEvent.MESSAGE_CREATED, broken)
    session.subscribe(MnesisEvent.SESSION_CLOSED, async_handler)
    await session.send("hi")
    await session.close()
    kinds = [k for k, _ in seen]
    assert kinds == ["message.created", "message.created", "session.closed"]
    assert seen[0][1]["role"] == "user"
    assert seen[1][1]["token_count"] > 0


async def test_history_snapshots_track_context_growth(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        for i in range(3):
            await s.send(f"message number {i} " * 20)
        snapshots = await s.history()
        assert [x.turn_index for x in snapshots] == [1, 2, 3]
        totals = [x.context_tokens.total for x in snapshots]
        assert totals == sorted(totals) and totals[0] > 0
        assert all(x.context_tokens.system_prompt > 0 for x in snapshots)


async def test_concurrent_sends_on_one_session_are_serialised(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        await asyncio.gather(*(s.send(f"q{i}") for i in range(5)))
        roles = [m.role for m in await s.messages()]
        assert roles == ["user", "assistant"] * 5
        assert await s.verify() == []


async def test_api_keys_never_reach_the_store(db_path: str) -> None:
    from mnesis.llm.litellm import LiteLLMProvider

    secret = "sk-test-SECRET-123456"
    provider = LiteLLMProvider(api_key=secret, api_base="http://127.0.0.1:9")
    assert secret not in repr(provider)
    session = await MnesisSession.create(model="openai/gpt-4o", db_path=db_path, provider=provider)
    with pytest.raises(Exception):  # noqa: B017 - nothing listens on port 9
        await session.send("hello")
    await session.close()
    raw = b"".join(p.read_bytes() for p in __import__("pathlib").Path(db_path).parent.glob("*.db*"))
    assert secret.encode() not in raw
    rows = sqlite3.connect(db_path).execute("SELECT error FROM messages").fetchall()
    assert rows and all(secret not in (r[0] or "") for r in rows)


async def test_a_mock_model_costs_nothing_whatever_model_it_stands_in_for(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        result = await s.send("hello")
        assert result.tokens.effective_total() > 0
        assert result.cost == 0.0 and s.cost == 0.0


async def test_the_price_table_applies_when_the_provider_reports_no_cost(db_path: str) -> None:
    class Priced:
        async def stream(self, request: LLMRequest) -> Any:
            yield StreamChunk(
                text="hi", usage=TokenUsage(input=1_000, output=100), finish_reason="stop"
            )

    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=Priced()) as s:
        result = await s.send("hello")
        assert result.cost == pytest.approx(s.limits.cost(TokenUsage(input=1_000, output=100)))
        assert result.cost > 0
