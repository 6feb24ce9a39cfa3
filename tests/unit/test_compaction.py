"""Compaction: thresholds, levels, the DAG, pins, pruning — with a mock summariser."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisEvent, MnesisSession, MockProvider, TokenUsage, ToolPart
from mnesis.errors import InvalidInputError
from mnesis.llm.base import LLMRequest
from mnesis.models.message import ToolStatus
from mnesis.tokens import TokenEstimator

MODEL = "openai/gpt-4o"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def small_config(**compaction: Any) -> MnesisConfig:
    """A 4,000-token window: usable 3,000, soft threshold 1,800, pass goal 900."""
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {
                "compaction_output_budget": 500,
                "prune_minimum_tokens": 100,
                "prune_protect_tokens": 400,
                **compaction,
            },
        }
    )


def text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def is_summary_request(request: LLMRequest) -> bool:
    content = str(request.messages[-1]["content"])
    return "<transcript>" in content or content.startswith("Summarise tersely")


class Model:
    """Answers turns briefly and summaries with a fixed short text; counts both."""

    def __init__(
        self,
        summary: str = "Summary: the user and assistant talked about greek letters.",
        fail_summaries: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.summary = summary
        self.fail_summaries = fail_summaries
        self.delay = delay
        self.turn_requests: list[LLMRequest] = []
        self.summary_requests: list[LLMRequest] = []

    async def __call__(self, request: LLMRequest) -> str:
        if is_summary_request(request):
            self.summary_requests.append(request)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_summaries:
                raise ConnectionError("summariser unreachable")
            return self.summary
        self.turn_requests.append(request)
        return "ok, " + text(20, len(self.turn_requests))


def request_tokens(request: LLMRequest) -> int:
    estimator = TokenEstimator(MODEL)
    return sum(estimator.estimate(str(m.get("content") or "")) + 4 for m in request.messages)


async def test_soft_threshold_compacts_in_the_background_without_delaying_turns(
    db_path: str,
) -> None:
    model = Model(delay=0.3)
    events: list[str] = []
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        session.subscribe(None, lambda e, p: events.append(e.value))
        triggered_at = None
        for turn in range(30):
            result = await session.send(text(120, turn))
            if result.compaction_triggered and triggered_at is None:
                triggered_at = turn
                # The turn returned while the (slow) summariser is still working.
                assert session.compaction_in_progress
        assert triggered_at is not None
        assert "compaction.triggered" in events and "compaction.completed" in events
        assert len(await session.conversation_messages()) == 60  # nothing lost
        assert await session.verify() == []
        history = await session.history()
        assert any(s.compaction_triggered for s in history)
        assert max(s.context_tokens.total for s in history) <= session.usable_tokens


async def test_no_request_ever_exceeds_the_usable_context(db_path: str) -> None:
    model = Model(delay=0.05)
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        for turn in range(60):
            await session.send(text(250, turn))
        assert max(request_tokens(r) for r in model.turn_requests) <= session.usable_tokens
        context = await session.context_for_next_turn()
        assert context[-1]["role"] == "assistant"
        assert await session.verify() == []


async def test_unreachable_summariser_falls_back_to_deterministic_truncation(
    db_path: str,
) -> None:
    model = Model(fail_summaries=True)
    levels_used: list[int] = []
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        session.subscribe(
            MnesisEvent.COMPACTION_COMPLETED, lambda e, p: levels_used.append(p["level_used"])
        )
        for turn in range(40):
            await session.send(text(150, turn))
        await session.compact()
        # Every pass that summarised anything had to fall back to level 3.
        assert levels_used and set(levels_used) - {0} == {3}
        assert model.summary_requests  # levels 1 and 2 were tried
        assert await session.verify() == []
        assert len(await session.conversation_messages()) == 80
        assert (await session.history())[-1].context_tokens.total <= session.usable_tokens


async def test_a_level_that_does_not_shrink_escalates(db_path: str) -> None:
    model = Model(summary="bloated " * 3_000)
    async with MnesisSession.open(
        model=MODEL,
        config=small_config(auto=False),
        db_path=db_path,
        provider=MockProvider(model),
    ) as session:
        for turn in range(12):
            await session.record(text(100, turn), text(100, turn + 100))
        result = await session.compact()
        assert result.level_used == 3
        # Every round tried level 1 and level 2, and both were refused.
        assert len(model.summary_requests) >= 2 and len(model.summary_requests) % 2 == 0
        assert result.tokens_after < result.tokens_before


async def test_compact_returns_a_full_result_and_the_summary_is_in_the_context(
    db_path: str,
) -> None:
    model = Model()
    async with MnesisSession.open(
        model=MODEL,
        config=small_config(auto=False),
        db_path=db_path,
        provider=MockProvider(model),
    ) as session:
        for turn in range(10):
            await session.record(text(100, turn), text(100, turn + 50))
        result = await session.compact()
        assert result.session_id == session.id
        assert result.level_used == 1
        assert result.compacted_message_count >= 2
        assert result.summary_message_id.startswith("sum_")
        assert 0 < result.summary_token_count < result.tokens_before
        assert result.tokens_after < result.tokens_before
        assert result.elapsed_ms >= 0
        context = await session.context_for_next_turn()
        assert result.summary_message_id in context[0]["content"]
        assert "greek letters" in context[0]["content"]
        assert await session.verify() == []
        breakdown = (await session.history())[-1].context_tokens
        assert breakdown.total > 0


async def test_compaction_model_and_prompt_are_used(db_path: str) -> None:
    model = Model()
    config = small_config(
        auto=False,
        compaction_model="anthropic/claude-opus-4-6",
        compaction_prompt="Summarise tersely:\n{transcript}",
    )
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=db_path, provider=MockProvider(model)
    ) as session:
        for turn in range(10):
            await session.record(text(100, turn), text(100, turn + 50))
        await session.compact()
        first = model.summary_requests[0]
        assert first.model == "anthropic/claude-opus-4-6"
        assert str(first.messages[0]["content"]).startswith("Summarise tersely:")


async def test_identifiers_missing_from_the_summary_are_appended(db_path: str) -> None:
    model = Model(summary="A short summary that names nothing.")
    async with MnesisSession.open(
        model=MODEL,
        config=small_config(auto=False),
        db_path=db_path,
        provider=MockProvider(model),
    ) as session:
        await session.record(
            "Look at src/app/main.py and https://example.com/spec?v=2 please " + text(100, 1),
            "Also see docs/design.md and file_0123456789abcdef " + text(100, 2),
        )
        for turn in range(8):
            await session.record(text(100, turn + 10), text(100, turn + 20))
        result = await session.compact()
        context = await session.context_for_next_turn()
        summary_text = context[0]["content"]
        assert result.summary_message_id in summary_text
        for identifier in [
            "src/app/main.py",
            "https://example.com/spec?v=2",
            "docs/design.md",
            "file_0123456789abcdef",
        ]:
            assert identifier in summary_text


async def test_pinned_messages_stay_verbatim_through_compaction(db_path: str) -> None:
    model = Model()
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        pinned = await session.send("The deploy key is K-7731; never forget it.", pin=True)
        for turn in range(40):
            await session.send(text(150, turn))
        await session.compact()
        context = await session.context_for_next_turn()
        assert any(m["content"] == "The deploy key is K-7731; never forget it." for m in context)
        assert await session.verify() == []
        with pytest.raises(InvalidInputError, match="more than half"):
            huge = await session.record(text(1_600, 99), "noted")
            await session.pin(huge.user_message_id)
        assert pinned.user_message_id


async def test_old_tool_outputs_are_pruned_to_tombstones_not_deleted(db_path: str) -> None:
    model = Model()
    config = small_config(auto=False, prune_protect_tokens=200, prune_minimum_tokens=100)
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=db_path, provider=MockProvider(model)
    ) as session:
        for i in range(4):
            call = ToolPart(
                tool_name="read_file",
                tool_call_id=f"c{i}",
                input={"path": f"f{i}"},
                output=text(200, i),
                status=ToolStatus.COMPLETED,
            )
            await session.record(f"read f{i}", [call])
        await session.record("thanks", "you are welcome")
        result = await session.compact()
        assert result.pruned_tool_outputs >= 1
        assert result.pruned_tokens > 100
        stored = await session.messages()
        assert stored[1].tool_parts()[0].output == text(200, 0)  # the original is kept
        assert await session.verify() == []


async def test_close_waits_for_a_running_pass(db_path: str) -> None:
    model = Model(delay=0.3)
    session = await MnesisSession.create(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    )
    for turn in range(30):
        await session.send(text(120, turn))
        if session.compaction_in_progress:
            break
    assert session.compaction_in_progress
    await session.close()
    assert not session.compaction_in_progress
    reopened = await MnesisSession.load(session.id, db_path=db_path, provider=MockProvider(model))
    assert await reopened.verify() == []
    context = await reopened.context_for_next_turn()
    assert any("Summary sum_" in str(m["content"]) for m in context)
    await reopened.close()


async def test_long_mock_session_stays_inside_the_window_and_builds_a_dag(
    db_path: str,
) -> None:
    model = Model()
    completed: list[dict[str, Any]] = []
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        session.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: completed.append(p))
        for turn in range(2_000):
            await session.record(text(60, turn), text(40, turn + 7))
            if turn % 97 == 0:
                fits = await session.context_for_next_turn()
                assert request_tokens(LLMRequest(MODEL, fits)) <= session.usable_tokens
        context = await session.context_for_next_turn()
        breakdown = (await session.history())[-1].context_tokens
        assert len(await session.conversation_messages()) == 4_000
        assert await session.verify() == []
        assert len(completed) >= 10
        assert context[-1]["content"] == text(40, 1_999 + 7)
    # Condensation keeps the summaries in the context few and small, however
    # many passes ran.
    in_context = sum("Summary sum_" in str(m["content"]) for m in context)
    assert 1 <= in_context <= 12
    assert breakdown.summary <= session.usable_tokens // 3
    assert any("condensed" in str(m["content"]) for m in context)


async def test_summarisation_requests_fit_a_smaller_compaction_model(db_path: str) -> None:
    model = Model()
    config = MnesisConfig.model_validate(
        {
            "compaction": {
                "auto": False,
                "compaction_model": "openai/gpt-4",
                "compaction_output_budget": 2_000,
            }
        }
    )
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=db_path, provider=MockProvider(model)
    ) as session:
        for turn in range(120):
            await session.record(text(200, turn), text(200, turn + 1_000))
        result = await session.compact()
        assert result.tokens_before > 40_000
        assert result.level_used == 1
        # gpt-4's window is 8,192 tokens: the span was chunked to fit it.
        assert len(model.summary_requests) > 1
        assert all(r.model == "openai/gpt-4" for r in model.summary_requests)
        assert max(request_tokens(r) + (r.max_tokens or 0) for r in model.summary_requests) <= 8_192
        assert await session.verify() == []


async def test_pinning_too_much_up_front_stores_nothing(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, config=small_config(), db_path=db_path, provider=MockProvider(Model())
    ) as session:
        with pytest.raises(InvalidInputError, match="more than half"):
            await session.send(text(1_800, 1), pin=True)
        assert await session.messages() == []


def test_a_custom_prompt_gets_its_budget_filled_in() -> None:
    from mnesis.compaction.prompts import build_prompt

    prompt = build_prompt("Summarise in {budget} tokens.", "the transcript", 300)
    assert prompt.startswith("Summarise in 300 tokens.") and "the transcript" in prompt


async def test_the_summarisers_usage_counts_toward_the_session(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL,
        config=small_config(auto=False),
        db_path=db_path,
        provider=MockProvider(Model()),
    ) as session:
        for turn in range(10):
            await session.record(
                text(100, turn), text(100, turn + 50), tokens=TokenUsage(input=10, output=10)
            )
        before = session.token_usage.effective_total()
        result = await session.compact()
        assert result.tokens.effective_total() > 0
        assert result.cost == 0.0  # a mock summariser costs nothing
        assert session.token_usage.effective_total() == before + result.tokens.effective_total()
        assert (await session.info()).tokens == session.token_usage
        assert await session.verify() == []


async def test_two_compactors_of_one_session_never_run_at_once(db_path: str) -> None:
    slow = Model(delay=0.4)
    first = await MnesisSession.create(
        model=MODEL, config=small_config(auto=False), db_path=db_path, provider=MockProvider(slow)
    )
    for turn in range(12):
        await first.record(text(100, turn), text(100, turn + 50))
    second = await MnesisSession.load(first.id, db_path=db_path, provider=MockProvider(Model()))
    running = asyncio.create_task(first.compact())
    await asyncio.sleep(0.15)
    other = await second.compact()
    assert other.skipped and other.level_used == 0  # refused at once, nothing done
    await second.record("a turn while the other compacts", "fine")  # turns are not blocked
    done = await running
    assert not done.skipped and done.level_used == 1
    assert await first.verify() == []
    await first.close()
    await second.close()
