"""ContextWindow: replacing entries in place renders exactly what a fresh window would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mnesis.context import ContextWindow, with_cache_breakpoints
from mnesis.models.message import MessagePart, TextPart, ToolPart, ToolStatus
from mnesis.store.base import ContextEntry, SummaryRecord


def _entry(index: int, calls: int, filled: frozenset[int]) -> ContextEntry:
    """Message ``index``: an assistant turn with ``calls`` tool calls (those in ``filled``
    have results) or, with no calls, a user message."""
    if not calls:
        return ContextEntry("message", f"m{index}", "user", (TextPart(text=f"q{index}"),), (3,))
    parts: list[MessagePart] = [TextPart(text=f"a{index}")]
    tokens = [2]
    for n in range(calls):
        done = n in filled
        parts.append(
            ToolPart(
                tool_name="look",
                tool_call_id=f"c{index}_{n}",
                input={"n": n},
                output=f"out {index}.{n}" if done else None,
                status=ToolStatus.COMPLETED if done else ToolStatus.PENDING,
            )
        )
        tokens.append(5 + (7 if done else 0))
    return ContextEntry("message", f"m{index}", "assistant", tuple(parts), tuple(tokens))


def _same(window: ContextWindow, fresh: ContextWindow) -> None:
    assert window.messages("sys") == fresh.messages("sys")
    assert window.token_count == fresh.token_count
    assert window.breakdown(10) == fresh.breakdown(10)
    assert window.entries == fresh.entries


shapes = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(shapes, st.data())
def test_replacing_entries_matches_a_fresh_window(calls: list[int], data: st.DataObject) -> None:
    before = [_entry(i, n, frozenset()) for i, n in enumerate(calls)]
    window = ContextWindow(before)
    chosen = data.draw(st.sets(st.sampled_from(range(len(calls)))))
    after = list(before)
    for i in chosen:
        filled = data.draw(st.frozensets(st.integers(min_value=0, max_value=calls[i])))
        after[i] = _entry(i, calls[i], filled)
    order = data.draw(st.permutations(sorted(chosen)))  # in any order, as a batch
    replaced = window.replace(*(after[i] for i in order))
    assert replaced == len(chosen)
    _same(window, ContextWindow(after))


def test_replacing_an_entry_not_in_the_window_changes_nothing() -> None:
    entries = [_entry(0, 0, frozenset()), _entry(1, 2, frozenset())]
    window = ContextWindow(entries)
    assert window.replace(_entry(7, 1, frozenset({0}))) == 0
    _same(window, ContextWindow(entries))


def _summary(index: int) -> ContextEntry:
    record = SummaryRecord(
        id=f"sum_{index}",
        session_id="s",
        kind="leaf",
        depth=0,
        level_used=1,
        text=f"what happened {index}",
        token_count=9,
        first_seq=1,
        last_seq=2,
        message_count=2,
        created_at=0.0,
    )
    text = TextPart(text=f"summary {index}")
    return ContextEntry("summary", record.id, "user", (text,), (9,), summary=record)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["summary", "pinned", "user", "tools"]), max_size=14),
    st.sampled_from(["sys", None]),
)
def test_cache_marks_from_the_window_match_a_full_scan(
    kinds: list[str], system: str | None
) -> None:
    # Summaries sit at the start (pinned messages may stand between them); the window
    # finds the last one without scanning the conversation.
    ordered = sorted(kinds, key=lambda k: k not in ("summary", "pinned"))
    entries = [
        _summary(i) if kind == "summary" else _entry(i, 2 if kind == "tools" else 0, frozenset({0}))
        for i, kind in enumerate(ordered)
    ]
    window = ContextWindow(entries)
    plain = window.messages(system)
    assert window.messages(system, cache_breakpoints=True) == with_cache_breakpoints(plain)
