"""The active context in memory, rendered to chat messages incrementally.

Pure: no I/O. The session feeds it the entries of the store's context view;
it keeps each entry's rendered messages and the running token totals, so that
assembling the request of turn 2,000 costs no more than turn 10 — nothing is
re-rendered or re-counted unless it changed.

Rendering follows the OpenAI/litellm chat format. An assistant message's tool
calls are always followed by one ``tool`` message per call, so a provider
never sees an orphan: a call whose result was never recorded gets an explicit
placeholder result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mnesis.context.cache import mark_cache_breakpoints
from mnesis.models.message import FileRefPart, MessagePart, TextPart, ToolPart
from mnesis.models.results import ContextBreakdown
from mnesis.store.base import ContextEntry, SummaryRecord
from mnesis.tokens import MESSAGE_OVERHEAD

NO_RESULT = "[no result was recorded for this tool call]"


def render_file_block(part: FileRefPart) -> str:
    """The compact block that stands for a large file in the context."""
    return (
        f"[FILE {part.content_id} path={part.path} type={part.file_type} "
        f"tokens={part.token_count}]\n{part.exploration_summary}"
    )


def tool_signature(part: ToolPart) -> str:
    """Name and canonical input: what makes two tool calls 'the same'."""
    return part.tool_name + "\x00" + json.dumps(part.input, sort_keys=True, default=str)


def _content(parts: Iterable[MessagePart]) -> str:
    chunks = []
    for part in parts:
        if isinstance(part, TextPart):
            chunks.append(part.text)
        elif isinstance(part, FileRefPart):
            chunks.append(render_file_block(part))
    return "\n\n".join(chunks)


def summary_header(record: SummaryRecord) -> str:
    """The first line of a summary in the context: what it covers and how to get it back."""
    span = (
        f"message #{record.first_seq}"
        if record.first_seq == record.last_seq
        else f"messages #{record.first_seq}-#{record.last_seq}"
    )
    return (
        f"[Summary {record.id} of {span} ({record.message_count} messages, "
        f'{record.kind}). The originals are stored: lcm_expand("{record.id}") returns them.]'
    )


def render_summary(record: SummaryRecord) -> str:
    """The full text a summary node contributes to the context."""
    return f"{summary_header(record)}\n{record.text}"


def render_entry(entry: ContextEntry) -> list[dict[str, Any]]:
    """The chat messages of one context entry."""
    if entry.summary is not None:
        return [{"role": "user", "content": render_summary(entry.summary)}]
    calls = [p for p in entry.parts if isinstance(p, ToolPart)]
    content = _content(entry.parts)
    if entry.role == "user" or not calls:
        return [{"role": entry.role, "content": content}]
    out: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [
                {
                    "id": call.tool_call_id,
                    "type": "function",
                    "function": {
                        "name": call.tool_name,
                        "arguments": json.dumps(call.input, default=str),
                    },
                }
                for call in calls
            ],
        }
    ]
    for call in calls:
        if call.output is not None:
            result = call.output
        elif call.error_message is not None:
            result = f"Error: {call.error_message}"
        else:
            result = NO_RESULT
        out.append({"role": "tool", "tool_call_id": call.tool_call_id, "content": result})
    return out


def _tool_tokens(entry: ContextEntry) -> int:
    if entry.summary is not None:
        return 0
    return sum(
        t for p, t in zip(entry.parts, entry.part_tokens, strict=True) if isinstance(p, ToolPart)
    )


class ContextWindow:
    """Entries of the active context, their rendered messages and token totals."""

    def __init__(self, entries: Iterable[ContextEntry] = ()) -> None:
        self._entries: list[ContextEntry] = []
        self._rendered: list[list[dict[str, Any]]] = []
        self._flat: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}
        self._tokens = 0
        self._tool_tokens = 0
        self._summary_tokens = 0
        self._last_summary: int | None = None  # position of the newest summary entry
        self._awaiting: dict[str, None] = {}  # entries with a tool call awaiting its result
        self.reset(entries)

    def reset(self, entries: Iterable[ContextEntry]) -> None:
        """Replace everything (after a reload from the store)."""
        self._entries, self._rendered, self._flat, self._index = [], [], [], {}
        self._tokens = self._tool_tokens = self._summary_tokens = 0
        self._last_summary = None
        self._awaiting = {}
        self.extend(entries)

    def extend(self, entries: Iterable[ContextEntry]) -> None:
        """Add entries after the newest, in order."""
        for entry in entries:
            self.append(entry)

    def append(self, entry: ContextEntry) -> None:
        """Add the newest entry."""
        rendered = render_entry(entry)
        if entry.summary is not None:
            self._last_summary = len(self._entries)
        if entry.awaits_results:
            self._awaiting[entry.ref_id] = None
        self._index[entry.ref_id] = len(self._entries)
        self._entries.append(entry)
        self._rendered.append(rendered)
        self._flat.extend(rendered)
        self._adjust_totals(entry, len(rendered), 1)

    def replace(self, *entries: ContextEntry) -> int:
        """Swap in new versions of entries (same ``ref_id``), re-rendering only those.

        Returns:
            How many of them were in the window; absent ones are ignored.
        """
        by_position = {self._index[e.ref_id]: e for e in entries if e.ref_id in self._index}
        # Walk from the end so the flat list's offsets are found by counting back
        # over the few entries after each one (tool results land near the end).
        rendered_after = 0
        counted_from = len(self._entries)
        for position in sorted(by_position, reverse=True):
            rendered_after += sum(len(r) for r in self._rendered[position + 1 : counted_from])
            counted_from = position + 1
            old_entry, old = self._entries[position], self._rendered[position]
            entry = by_position[position]
            new = render_entry(entry)
            start = len(self._flat) - rendered_after - len(old)
            self._flat[start : start + len(old)] = new
            self._entries[position], self._rendered[position] = entry, new
            self._adjust_totals(old_entry, len(old), -1)
            self._adjust_totals(entry, len(new), 1)
            self._awaiting.pop(entry.ref_id, None)
            if entry.awaits_results:
                self._awaiting[entry.ref_id] = None
        return len(by_position)

    def _adjust_totals(self, entry: ContextEntry, rendered: int, sign: int) -> None:
        """Add (``sign=1``) or remove (``-1``) an entry's tokens from the totals."""
        self._tokens += sign * (entry.token_count + MESSAGE_OVERHEAD * rendered)
        self._tool_tokens += sign * _tool_tokens(entry)
        if entry.summary is not None:
            self._summary_tokens += sign * (entry.token_count + MESSAGE_OVERHEAD)

    def get(self, ref_id: str) -> ContextEntry | None:
        position = self._index.get(ref_id)
        return None if position is None else self._entries[position]

    @property
    def entries(self) -> tuple[ContextEntry, ...]:
        return tuple(self._entries)

    @property
    def last_position(self) -> int:
        """The store's position of the newest entry (0 when there is none)."""
        return self._entries[-1].position if self._entries else 0

    @property
    def awaiting_results(self) -> tuple[str, ...]:
        """The ``ref_id`` of each entry with a tool call that has no result yet."""
        return tuple(self._awaiting)

    @property
    def token_count(self) -> int:
        """Tokens of all entries, framing included (system prompt excluded)."""
        return self._tokens

    def messages(
        self, system_prompt: str | None, *, cache_breakpoints: bool = False
    ) -> list[dict[str, Any]]:
        """The request's message list. The dicts are shared: copy before mutating.

        With ``cache_breakpoints`` the stable prefixes carry ``cache_control`` marks
        (see :mod:`mnesis.context.cache`), found without scanning the whole list.
        """
        head = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages = head + self._flat
        if not cache_breakpoints:
            return messages
        summary = None
        if self._last_summary is not None:  # summaries sit near the start: a short sum
            summary = len(head) + sum(len(r) for r in self._rendered[: self._last_summary + 1]) - 1
        return mark_cache_breakpoints(messages, last_summary=summary)

    def breakdown(self, system_tokens: int) -> ContextBreakdown:
        """Where the context's tokens go."""
        messages = self._tokens - self._tool_tokens - self._summary_tokens
        return ContextBreakdown(
            system_prompt=system_tokens,
            summary=self._summary_tokens,
            messages=messages,
            tool_outputs=self._tool_tokens,
            total=system_tokens + self._tokens,
        )

    def recent_tool_calls(self, limit: int) -> list[ToolPart]:
        """The last ``limit`` tool calls in the context, oldest first."""
        found: list[ToolPart] = []
        for entry in reversed(self._entries):
            for part in reversed(entry.parts):
                if isinstance(part, ToolPart):
                    found.append(part)
                    if len(found) >= limit:
                        return found[::-1]
        return found[::-1]
