"""Prompt-cache breakpoints for providers that need them marked (Anthropic).

Between compactions the assembled context only grows at its end, so its
prefix is stable and can be cached. Anthropic caches up to a breakpoint the
request marks with ``cache_control``; OpenAI and others cache prefixes
automatically and need nothing. Marks go on copies: the context window's own
messages are never touched.
"""

from __future__ import annotations

from typing import Any

_EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # Anthropic's limit per request


def needs_cache_breakpoints(model: str) -> bool:
    """True for models that cache only at explicit ``cache_control`` marks."""
    name = model.lower()
    return name.startswith("anthropic/") or "claude" in name


def _markable(message: dict[str, Any]) -> bool:
    return (
        message.get("role") in ("system", "user", "assistant")
        and isinstance(message.get("content"), str)
        and bool(message["content"])
    )


def with_cache_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the end of the system prompt, of the summaries, and of everything
    before the newest user message — the prefixes that repeat turn after turn."""
    if not messages:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    wanted: list[int] = []
    if messages[0].get("role") == "system" and _markable(messages[0]):
        wanted.append(0)
    summaries = [
        i
        for i, m in enumerate(messages[:last_user])
        if m.get("role") == "user" and str(m.get("content", "")).startswith("[Summary ")
    ]
    if summaries:
        wanted.append(summaries[-1])
    for i in range(last_user - 1, 0, -1):
        if _markable(messages[i]):
            wanted.append(i)
            break
    marked = list(messages)
    for i in sorted(set(wanted))[:MAX_BREAKPOINTS]:
        message = messages[i]
        marked[i] = {
            **message,
            "content": [{"type": "text", "text": message["content"], "cache_control": _EPHEMERAL}],
        }
    return marked
