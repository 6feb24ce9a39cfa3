from __future__ import annotations

import pytest

from mnesis.tokens import TokenEstimator, encoding_for_model, heuristic_count


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("openai/o3-mini", "o200k_base"),
        ("anthropic/claude-opus-4-6", "cl100k_base"),
        ("gpt-4", "cl100k_base"),
        ("text-davinci-003", "p50k_base"),
        ("openai/smollm2", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_encoding_follows_model_family(model: str | None, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "text-davinci-003"])
def test_bundled_encodings_load_offline(model: str) -> None:
    estimator = TokenEstimator(model)
    assert estimator.exact
    assert estimator.estimate("hello world") == 2


def test_heuristic_does_not_undercount_cjk() -> None:
    exact = TokenEstimator("gpt-4")
    for text in [
        "这是一个关于上下文管理的测试句子。" * 20,
        "コンテキスト管理のテストです。" * 20,
        "문맥 관리 테스트 문장입니다." * 20,
    ]:
        assert heuristic_count(text) >= exact.estimate(text)


def test_heuristic_is_close_for_english() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 50
    exact = TokenEstimator("gpt-4").estimate(text)
    assert exact * 0.8 <= heuristic_count(text) <= exact * 1.6


def test_heuristic_only_mode_and_empty_text() -> None:
    estimator = TokenEstimator("gpt-4", heuristic_only=True)
    assert not estimator.exact
    assert estimator.estimate("") == 0
    assert estimator.estimate("abcd" * 10) == 10


def test_special_token_text_is_counted_not_rejected() -> None:
    assert TokenEstimator("gpt-4").estimate("<|endoftext|>") > 0
