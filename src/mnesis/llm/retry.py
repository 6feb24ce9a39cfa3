"""Retrying transient provider failures with exponential backoff.

A stream is retried only before its first text or tool-call chunk: once output
has reached the caller, replaying it would show the same words twice, so a
failure after that point fails the turn instead. A stream that ends with no
output and no finish reason was cut off, not answered: it is a transient
failure (an empty reply *with* a finish reason is the model's answer).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

from mnesis.errors import LLMError, LLMPermanentError, LLMTransientError
from mnesis.llm.base import LLMProvider, LLMRequest, StreamChunk
from mnesis.models.config import RetryConfig

RetryCallback = Callable[[int, float, LLMError], None]


def backoff_delay(config: RetryConfig, attempt: int) -> float:
    """``min(base_delay * 2**(attempt-1) + jitter, max_delay)`` for retry ``attempt`` (1-based)."""
    jitter = random.uniform(0.0, config.base_delay) if config.jitter else 0.0
    return float(min(config.base_delay * 2 ** (attempt - 1) + jitter, config.max_delay))


def as_llm_error(exc: Exception) -> LLMError:
    """Any provider exception as an LLMError (unknown ones are not retried)."""
    if isinstance(exc, LLMError):
        return exc
    return LLMPermanentError(f"{type(exc).__name__}: {exc}", provider_error=type(exc).__name__)


async def stream_with_retry(
    provider: LLMProvider,
    request: LLMRequest,
    config: RetryConfig,
    on_retry: RetryCallback | None = None,
) -> AsyncIterator[StreamChunk]:
    """Stream ``request``, retrying transient failures that happen before any output."""
    attempt = 0
    while True:
        produced = False  # text or a tool call reached the caller
        try:
            finished = False
            async for chunk in provider.stream(request):
                produced = produced or bool(chunk.text or chunk.tool_calls)
                finished = finished or bool(chunk.finish_reason)
                yield chunk
            if not produced and not finished:
                raise LLMTransientError("the stream ended with no output and no finish reason")
            return
        except Exception as exc:
            error = as_llm_error(exc)
            if produced or not error.transient or attempt >= config.max_retries:
                if error is exc:
                    raise
                raise error from exc
            attempt += 1
            delay = backoff_delay(config, attempt)
            if on_retry is not None:
                on_retry(attempt, delay, error)
            await asyncio.sleep(delay)
