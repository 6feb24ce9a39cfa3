"""Prompt-cache breakpoints: Anthropic-style marks on copies, at stable prefixes."""

from __future__ import annotations

from mnesis.context import needs_cache_breakpoints, with_cache_breakpoints


def test_only_explicit_cache_providers_get_marks() -> None:
    assert needs_cache_breakpoints("anthropic/claude-opus-4-6")
    assert needs_cache_breakpoints("bedrock/anthropic.claude-3-5-sonnet")
    assert not needs_cache_breakpoints("openai/gpt-4o")


def test_marks_go_on_system_summaries_and_the_turn_before_the_newest_user_message() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "[Summary sum_1 of messages #1-#9 ...]\ntext"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
        {"role": "tool", "tool_call_id": "c", "content": "out"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    original = [dict(m) for m in messages]
    marked = with_cache_breakpoints(messages)
    assert messages == original  # the window's own messages are untouched
    flagged = [i for i, m in enumerate(marked) if isinstance(m.get("content"), list)]
    assert flagged == [0, 1, 5]
    assert marked[5]["content"] == [
        {"type": "text", "text": "a1", "cache_control": {"type": "ephemeral"}}
    ]
    assert marked[6] is messages[6]
