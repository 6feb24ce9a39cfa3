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
    last_user = _last_user(messages)
    summaries = [i for i in range(last_user) if _is_summary(messages[i])]
    return mark_cache_breakpoints(messages, last_summary=summaries[-1] if summaries else None)


def mark_cache_breakpoints(
    messages: list[dict[str, Any]], *, last_summary: int | None
) -> list[dict[str, Any]]:
    """:func:`with_cache_breakpoints` for a caller that knows where the last summary
    is (the context window does): no scan of the whole list, so the cost does not
    grow with the conversation."""
    if not messages:
        return messages
    last_user = _last_user(messages)
    wanted: list[int] = []
    if messages[0].get("role") == "system" and _markable(messages[0]):
        wanted.append(0)
    if last_summary is not None and last_summary >= last_user:  # rare: look before it
        before = (i for i in range(last_user - 1, -1, -1) if _is_summary(messages[i]))
        last_summary = next(before, None)
    if last_summary is not None:
        wanted.append(last_summary)
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


def _last_user(messages: list[dict[str, Any]]) -> int:
    """Index of the newest user message (0 when there is none); scans from the end."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return 0


def _is_summary(message: dict[str, Any]) -> bool:
    return message.get("role") == "user" and str(message.get("content", "")).startswith("[Summary ")
