"""Edges of a turn: empty replies, streams cut off with nothing, a context that cannot fit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mnesis import (
    ContextLimitError,
    MnesisConfig,
    MnesisEvent,
    MnesisSession,
    MockProvider,
    MockReply,
    TokenUsage,
)
from mnesis.errors import LLMTransientError
from mnesis.llm.base import LLMRequest, StreamChunk
from mnesis.models.config import RetryConfig, SessionConfig
from mnesis.models.message import MessageStatus

MODEL = "openai/gpt-4o"


def retrying(max_retries: int) -> MnesisConfig:
    return MnesisConfig(
        session=SessionConfig(retry=RetryConfig(max_retries=max_retries, base_delay=0.0))
    )


async def test_an_empty_reply_with_a_finish_reason_is_stored_and_returned(db_path: str) -> None:
    provider = MockProvider(lambda r: MockReply(text="", usage=TokenUsage(input=9, output=0)))
    warnings: list[dict[str, Any]] = []
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as session:
        session.subscribe(MnesisEvent.LLM_EMPTY_REPLY, lambda e, p: warnings.append(p))
        result = await session.send("say nothing")
        assert result.text == ""
        assert result.finish_reason == "stop"
        assert warnings == [
            {
                "session_id": session.id,
                "model": MODEL,
                "message_id": result.message_id,
                "finish_reason": "stop",
            }
        ]
        stored = await session.messages()
        assert [(m.role, m.message.status) for m in stored] == [
            ("user", MessageStatus.COMPLETE),
            ("assistant", MessageStatus.COMPLETE),
        ]
        assert stored[1].id == result.message_id and stored[1].text_content() == ""
        assert session.token_usage.input == 9
        provider.handler = lambda r: "now I speak"
        assert (await session.send("and now?")).text == "now I speak"
        assert len(warnings) == 1
        assert await session.verify() == []


class CutOff:
    """A provider whose first ``cuts`` streams end with nothing at all, then answer."""

    def __init__(self, cuts: int, usage_first: bool = False) -> None:
        self.cuts = cuts
        self.usage_first = usage_first
        self.calls = 0

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        if self.calls <= self.cuts:
            if self.usage_first:  # some servers send usage, then drop the stream
                yield StreamChunk(usage=TokenUsage(input=5, output=0))
            return
        yield StreamChunk(text="here")
        yield StreamChunk(text=" it is", finish_reason="stop", usage=TokenUsage(input=5, output=2))


@pytest.mark.parametrize("usage_first", [False, True])
async def test_a_stream_that_ends_with_nothing_is_retried(db_path: str, usage_first: bool) -> None:
    provider = CutOff(cuts=2, usage_first=usage_first)
    retries: list[dict[str, Any]] = []
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=provider, config=retrying(3)
    ) as session:
        session.subscribe(MnesisEvent.LLM_RETRY, lambda e, p: retries.append(p))
        result = await session.send("hello")
        assert result.text == "here it is"
        assert provider.calls == 3
        assert [r["attempt"] for r in retries] == [1, 2]
        assert "no output and no finish reason" in retries[0]["error"]
        assert (session.token_usage.input, session.token_usage.output) == (5, 2)


async def test_a_stream_cut_off_every_time_fails_the_turn_as_transient(db_path: str) -> None:
    provider = CutOff(cuts=10)
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=provider, config=retrying(1)
    ) as session:
        with pytest.raises(LLMTransientError, match="no output and no finish reason"):
            await session.send("hello")
        assert provider.calls == 2
        stored = await session.messages()
        assert [m.message.status for m in stored] == ["complete", "failed"]


async def test_text_then_no_finish_reason_is_a_reply_not_a_retry(db_path: str) -> None:
    class Truncated:
        calls = 0

        async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
            self.calls += 1
            yield StreamChunk(text="partial but shown")

    provider = Truncated()
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=provider, config=retrying(3)
    ) as session:
        deltas: list[str] = []
        result = await session.send("hello", on_part=lambda p: deltas.append(p.text))
        assert result.text == "partial but shown" == "".join(deltas)  # shown once, not twice
        assert provider.calls == 1


async def test_a_context_past_the_budget_with_compaction_off_sends_nothing(db_path: str) -> None:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"auto": False, "compaction_output_budget": 500},
        }
    )
    provider = MockProvider()
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=provider, config=config
    ) as session:
        for i in range(24):
            await session.record(f"Report {i}: " + "all systems nominal. " * 30, "Noted.")
        with pytest.raises(ContextLimitError, match=r"compaction\.auto"):
            await session.send("status?")
        assert provider.calls == 0
        await session.compact()  # the way out the error names
        assert (await session.send("status?")).text
