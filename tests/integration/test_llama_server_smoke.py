"""Smoke test: litellm streams real tokens (and usage) from the local server."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
import pytest

pytestmark = pytest.mark.integration


async def test_litellm_streams_text_and_usage(llama_server: str, llama_model: str) -> None:
    stream = await litellm.acompletion(
        model=llama_model,
        api_base=llama_server,
        api_key="sk-local",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."},
        ],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )

    text_parts: list[str] = []
    usage = None
    n_chunks = 0
    async for chunk in stream:
        n_chunks += 1
        for choice in chunk.choices:
            content = getattr(choice.delta, "content", None)
            if content:
                text_parts.append(content)
        chunk_usage = getattr(chunk, "usage", None)
        if chunk_usage is not None:
            usage = chunk_usage

    text = "".join(text_parts)
    assert n_chunks > 1, "expected incremental streaming, got a single chunk"
    assert text.strip(), "no text streamed"
    assert usage is not None, "no usage chunk despite stream_options.include_usage"
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
