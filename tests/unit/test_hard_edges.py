"""Hard edges a hostile tester found: each repro refused early, with one clear line.

Every refusal here is a ``MnesisError`` raised before anything is sent to the
model, before anything waits and before anything is stored.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider, TextPart, ToolPart
from mnesis.errors import ConfigError, InvalidInputError, MnesisError
from mnesis.llm.base import LLMRequest
from mnesis.llm.limits import MAX_TOKENS, resolve_limits
from mnesis.tokens import TokenEstimator

MODEL = "anthropic/claude-opus-4-6"
WINDOW = {"context_limit": 115_712, "max_output_tokens": 4_096}  # 91,616 usable


def _request_tokens(request: LLMRequest) -> int:
    estimator = TokenEstimator(MODEL)
    return sum(estimator.estimate_message(str(m.get("content") or "")) for m in request.messages)


async def _session(db_path: str, provider: MockProvider, **overrides: int) -> MnesisSession:
    config = MnesisConfig(model_overrides={**WINDOW, **overrides})
    return await MnesisSession.create(
        model=MODEL, db_path=db_path, provider=provider, config=config
    )


# -- 3. one oversized message -----------------------------------------------------


async def test_a_message_larger_than_the_window_is_refused_before_any_request(
    db_path: str,
) -> None:
    provider = MockProvider()
    async with await _session(db_path, provider) as session:
        assert session.usable_tokens == 91_616
        with pytest.raises(InvalidInputError) as err:
            await session.send("B " * 2_500_000)
        message = str(err.value)
        assert "91,616" in message and "files=[path]" in message
        assert "\n" not in message
        assert provider.calls == 0
        assert await session.messages() == []


async def test_the_provider_never_receives_more_than_the_usable_budget(db_path: str) -> None:
    provider = MockProvider()
    async with await _session(db_path, provider) as session:
        fixed = session._core.counter.system_prompt_tokens(session.system_prompt) + 4
        estimator = TokenEstimator(MODEL)
        fits = "word " * (session.usable_tokens - fixed - 200)
        while estimator.estimate(fits) + fixed > session.usable_tokens:
            fits = fits[: -len("word ") * 100]
        await session.send(fits)
        assert provider.calls == 1
        assert _request_tokens(provider.requests[-1]) <= session.usable_tokens

        with pytest.raises(InvalidInputError):
            await session.send(fits + "word " * 400)  # just over
        with pytest.raises(InvalidInputError):  # the override counts, not the session's prompt
            await session.send("word " * 200, system_prompt="sys " * session.usable_tokens)
        assert provider.calls == 1
        assert len(await session.messages()) == 2


async def test_a_large_text_still_goes_as_a_file_reference(db_path: str, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("B " * 2_500_000, encoding="utf-8")
    provider = MockProvider()
    async with await _session(db_path, provider) as session:
        await session.send("Summarise the attached file.", files=[big])
        assert _request_tokens(provider.requests[-1]) <= session.usable_tokens


# -- 7. max_tool_steps, a lone surrogate, a huge context_limit ----------------------


@pytest.mark.parametrize("steps", [0, -3, True, 1.5, "2"])
async def test_max_tool_steps_below_one_or_not_a_number_is_refused(
    db_path: str, steps: Any
) -> None:
    provider = MockProvider()
    async with await _session(db_path, provider) as session:
        with pytest.raises(InvalidInputError, match="max_tool_steps"):
            await session.send("hello", max_tool_steps=steps)
        assert provider.calls == 0
        assert await session.messages() == []
        await session.send("hello", max_tool_steps=1)
        assert provider.calls == 1


async def test_record_with_a_lone_surrogate_is_refused_without_waiting(db_path: str) -> None:
    release = asyncio.Event()

    async def slow(request: LLMRequest) -> str:
        await release.wait()
        return "done"

    async with await _session(db_path, MockProvider(slow)) as session:
        turn = asyncio.create_task(session.send("hold the turn lock"))
        await asyncio.sleep(0.05)
        try:
            for user, reply in (("bad \ud800 name", "ok"), ("ok", [TextPart(text="\udcff")])):
                with pytest.raises(InvalidInputError, match="UTF-8"):
                    await asyncio.wait_for(session.record(user, reply), timeout=2)
            with pytest.raises(InvalidInputError, match="UTF-8"):
                await asyncio.wait_for(session.record_tool_result("c1", "\ud800"), timeout=2)
        finally:
            release.set()
            await turn
        assert [m.text_content() for m in await session.messages()] == [
            "hold the turn lock",
            "done",
        ]


@pytest.mark.parametrize("value", [{"x": object()}, {"x": b"\xff"}, {"x": "\ud800"}])
async def test_a_tool_input_that_is_not_json_is_refused_before_the_store(
    db_path: str, value: dict[str, Any]
) -> None:
    async with await _session(db_path, MockProvider()) as session:
        call = ToolPart(tool_name="lookup", tool_call_id="c1", input=value)
        with pytest.raises(InvalidInputError) as err:
            await session.record("look it up", [call])
        assert isinstance(err.value, MnesisError) and isinstance(err.value, ValueError)
        assert "\n" not in str(err.value)
        assert await session.messages() == []


@pytest.mark.parametrize("limit", [10**30, MAX_TOKENS + 1, 1e30])
async def test_a_huge_context_limit_is_a_config_error(db_path: str, limit: Any) -> None:
    with pytest.raises(ConfigError, match="context_limit"):
        resolve_limits(MODEL, {"context_limit": limit})
    if isinstance(limit, int):
        with pytest.raises(ConfigError, match="context_limit"):
            await MnesisSession.create(
                model=MODEL,
                db_path=db_path,
                provider=MockProvider(),
                config=MnesisConfig(model_overrides={"context_limit": limit}),
            )
    assert not os.path.exists(db_path)


def test_limits_up_to_the_bound_are_exact_integers() -> None:
    limits = resolve_limits(MODEL, {"context_limit": MAX_TOKENS, "max_output_tokens": 7})
    assert limits.context_limit == MAX_TOKENS and type(limits.context_limit) is int
    assert limits.max_output_tokens == 7
    assert resolve_limits(MODEL, {"context_limit": 200_000.0}).context_limit == 200_000


# -- 5. errors that escaped as something else ---------------------------------------


async def test_a_nul_in_the_database_path_is_a_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "a\0b.db")
    with pytest.raises(ConfigError, match="NUL"):
        await MnesisSession.create(model=MODEL, db_path=path, provider=MockProvider())
    with pytest.raises(ConfigError, match="NUL"):
        await MnesisSession.list_sessions(db_path=path)
    with pytest.raises(ConfigError, match="NUL"):
        await MnesisSession.load("sess_x", db_path=path)


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@host:notaport/db", "postgresql://u:pw@host:99999/db"]
)
async def test_a_bad_postgres_port_is_a_config_error_without_the_password(url: str) -> None:
    for attempt in (
        lambda: MnesisSession.create(model=MODEL, db_path=url, provider=MockProvider()),
        lambda: MnesisSession.list_sessions(db_path=url),
        lambda: MnesisSession.load("sess_x", db_path=url),
    ):
        with pytest.raises(ConfigError, match=r"(?i)port") as err:
            await attempt()
        assert "pw" not in str(err.value) and "u@host" in str(err.value)
