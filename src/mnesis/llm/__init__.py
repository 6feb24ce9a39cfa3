"""Model providers: the protocol, litellm, the mock, retries and model limits."""

from __future__ import annotations

import os

from mnesis.llm.base import (
    LLMProvider,
    LLMRequest,
    ResponseAccumulator,
    StreamChunk,
    ToolCallDelta,
    complete,
)
from mnesis.llm.limits import ModelLimits, resolve_limits, usable_context
from mnesis.llm.litellm import LiteLLMProvider
from mnesis.llm.mock import MockProvider, MockReply, MockToolCall, default_handler

__all__ = [
    "LLMProvider",
    "LLMRequest",
    "LiteLLMProvider",
    "MockProvider",
    "MockReply",
    "MockToolCall",
    "ModelLimits",
    "ResponseAccumulator",
    "StreamChunk",
    "ToolCallDelta",
    "complete",
    "default_handler",
    "default_provider",
    "mock_mode",
    "resolve_limits",
    "usable_context",
]


def mock_mode() -> bool:
    """True when ``MNESIS_MOCK_LLM`` asks for the deterministic mock model."""
    return os.environ.get("MNESIS_MOCK_LLM", "").strip().lower() in {"1", "true", "yes", "on"}


def default_provider() -> LLMProvider:
    """The mock when ``MNESIS_MOCK_LLM=1``, else litellm."""
    return MockProvider() if mock_mode() else LiteLLMProvider()
