"""The provider layer: litellm chunk/usage/error translation, limits, prices, retry."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from mnesis.errors import ConfigError, LLMPermanentError, LLMTransientError
from mnesis.llm.base import ResponseAccumulator, StreamChunk, ToolCallDelta
from mnesis.llm.limits import DEFAULT_CONTEXT_LIMIT, resolve_limits, usable_context
from mnesis.llm.litellm import (
    LITELLM_ERRORS,
    chunk_from_litellm,
    import_litellm,
    translate_error,
)
from mnesis.llm.retry import backoff_delay
from mnesis.models.config import MnesisConfig, RetryConfig
from mnesis.models.message import TokenUsage


def test_limits_and_prices_come_from_litellms_bundled_table() -> None:
    limits = resolve_limits("anthropic/claude-opus-4-6")
    assert limits.known
    assert limits.context_limit >= 200_000
    assert limits.input_cost_per_token > 0
    gpt = resolve_limits("openai/gpt-4o")
    assert (gpt.context_limit, gpt.max_output_tokens) == (128_000, 16_384)
    usage = TokenUsage(input=1_000_000, output=0)
    assert gpt.cost(usage) == pytest.approx(gpt.input_cost_per_token * 1_000_000)


def test_model_overrides_win_over_the_table() -> None:
    limits = resolve_limits("openai/gpt-4o", {"context_limit": 50_000, "max_output_tokens": 2_000})
    assert (limits.context_limit, limits.max_output_tokens) == (50_000, 2_000)


def test_unknown_model_gets_conservative_default_and_a_warning() -> None:
    with pytest.warns(UserWarning, match="not in litellm's model table"):
        limits = resolve_limits("acme/never-heard-of-it-v1")
    assert not limits.known
    assert limits.context_limit == DEFAULT_CONTEXT_LIMIT
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_limits("acme/never-heard-of-it-v2", {"context_limit": 4096})


def test_usable_context_refuses_a_budget_that_leaves_nothing() -> None:
    limits = resolve_limits("openai/gpt-4o", {"context_limit": 30_000, "max_output_tokens": 10_000})
    with pytest.raises(ConfigError, match="compaction_output_budget=20000"):
        usable_context(limits, MnesisConfig())
    config = MnesisConfig.model_validate({"compaction": {"compaction_output_budget": 5_000}})
    assert usable_context(limits, config) == 15_000


def test_litellm_stream_chunks_translate_text_tool_calls_and_usage() -> None:
    litellm = import_litellm()
    from litellm.types.utils import ModelResponseStream

    chunks = [
        ModelResponseStream(choices=[{"delta": {"content": "Hel"}, "index": 0}]),
        ModelResponseStream(choices=[{"delta": {"content": "lo"}, "index": 0}]),
        ModelResponseStream(
            choices=[
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q": '},
                            }
                        ]
                    },
                }
            ]
        ),
        ModelResponseStream(
            choices=[
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        ),
    ]
    final = ModelResponseStream(choices=[])
    final.usage = litellm.Usage(
        prompt_tokens=100,
        completion_tokens=7,
        total_tokens=107,
        prompt_tokens_details={"cached_tokens": 40},
    )
    acc = ResponseAccumulator()
    for chunk in [*chunks, final]:
        acc.add(chunk_from_litellm(chunk))
    assert acc.text == "Hello"
    calls = acc.tool_parts("x")
    assert [(c.tool_name, c.tool_call_id, c.input) for c in calls] == [
        ("lookup", "call_9", {"q": "x"})
    ]
    assert acc.finish_reason == "tool_calls"
    assert acc.usage == TokenUsage(input=60, output=7, cache_read=40, total=107)


def test_malformed_tool_arguments_are_kept_raw_not_lost() -> None:
    acc = ResponseAccumulator()
    acc.add(StreamChunk(tool_calls=(ToolCallDelta(0, "c1", "f", '{"broken'),)))
    (call,) = acc.tool_parts("p")
    assert call.input == {"_raw": '{"broken'}


@pytest.mark.parametrize(
    ("name", "transient"),
    [
        ("RateLimitError", True),
        ("InternalServerError", True),
        ("ServiceUnavailableError", True),
        ("Timeout", True),
        ("APIConnectionError", True),
        ("AuthenticationError", False),
        ("BadRequestError", False),
        ("ContextWindowExceededError", False),
        ("NotFoundError", False),
    ],
)
def test_litellm_exceptions_are_translated(name: str, transient: bool) -> None:
    import_litellm()
    import litellm.exceptions as exc_mod

    cls: Any = getattr(exc_mod, name)
    try:
        exc = cls(message="failure", llm_provider="openai", model="gpt-4o")
    except TypeError:
        exc = cls(message="failure", llm_provider="openai", model="gpt-4o", response=None)
    error = translate_error(exc)
    assert isinstance(error, LLMTransientError if transient else LLMPermanentError)
    assert error.provider_error == name


def test_every_litellm_exception_class_is_in_the_table() -> None:
    import_litellm()
    import litellm.exceptions as exc_mod

    classes = [
        value
        for value in vars(exc_mod).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert len(classes) > 20
    unmapped = sorted(cls.__name__ for cls in classes if cls.__name__ not in LITELLM_ERRORS)
    assert unmapped == [], "classify these litellm exceptions in mnesis.llm.litellm"
    for cls in classes:
        instance = cls.__new__(cls)
        Exception.__init__(instance, "x")
        assert isinstance(translate_error(instance), LLMTransientError | LLMPermanentError)


def test_generic_provider_errors_are_classified_by_status() -> None:
    import_litellm()
    import litellm.exceptions as exc_mod

    for status, transient in ((503, True), (429, True), (400, False)):
        exc = exc_mod.APIError(
            status_code=status, message="boom", llm_provider="openai", model="gpt-4o"
        )
        error = translate_error(exc)
        assert isinstance(error, LLMTransientError if transient else LLMPermanentError), status


def test_backoff_is_exponential_and_capped() -> None:
    config = RetryConfig(max_retries=5, base_delay=1.0, max_delay=5.0, jitter=False)
    assert [backoff_delay(config, a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittery = RetryConfig(base_delay=1.0, max_delay=60.0, jitter=True)
    assert all(1.0 <= backoff_delay(jittery, 1) <= 2.0 for _ in range(20))


def test_a_table_output_cap_equal_to_the_window_still_leaves_context() -> None:
    limits = resolve_limits("ollama/llama3")
    assert limits.context_limit == 8192
    assert limits.max_output_tokens <= 8192 // 4
    config = MnesisConfig.model_validate({"compaction": {"compaction_output_budget": 1_000}})
    assert usable_context(limits, config) > 0
