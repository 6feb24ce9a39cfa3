"""The values a store takes and gives back, and the text it indexes.

Records are plain frozen dataclasses so every layer can build and read them
without knowing a backend; :mod:`mnesis.store.base` says what a store does with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mnesis.models.message import (
    FileRefPart,
    MessagePart,
    MessageStatus,
    MessageWithParts,
    Role,
    TokenUsage,
    ToolPart,
    ToolStatus,
)

# What the context shows instead of a pruned tool output (the original stays stored).
PRUNED_MARKER = "[tool output pruned from the context to save space; the original is kept]"
PRUNED_MARKER_TOKENS = 20


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session's row: identity, settings and running counters."""

    id: str
    model: str
    agent: str
    parent_id: str | None
    system_prompt: str
    config_json: str
    created_at: float
    updated_at: float = 0.0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost: float = 0.0
    turn_count: int = 0
    context_version: int = 0


@dataclass(frozen=True, slots=True)
class NewPart:
    """A part to append, with its token count computed once by the caller."""

    part: MessagePart
    token_count: int
    result_token_count: int = 0


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append."""

    id: str
    role: Role
    parts: tuple[NewPart, ...]
    created_at: float
    model: str | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    finish_reason: str | None = None
    error: str | None = None
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost: float = 0.0

    @property
    def token_count(self) -> int:
        return sum(p.token_count + p.result_token_count for p in self.parts)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of one tool call, filled into the call's empty result slot once."""

    tool_call_id: str
    output: str | None
    error: str | None
    token_count: int


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """One item of the active context, as the assembler needs it.

    A summary entry has one ``TextPart`` holding the rendered summary and
    ``summary`` set; a message entry's pruned tool outputs already carry their
    tombstone text.
    """

    kind: Literal["message", "summary"]
    ref_id: str
    role: Role
    parts: tuple[MessagePart, ...]
    part_tokens: tuple[int, ...]
    pinned: bool = False
    seq: int = 0
    summary: SummaryRecord | None = None
    position: int = 0  # its place in the context view (the store's numbering)

    @property
    def token_count(self) -> int:
        return sum(self.part_tokens)

    @property
    def awaits_results(self) -> bool:
        """Whether a tool call of this entry has no result yet (a later fill changes it)."""
        return any(isinstance(p, ToolPart) and not p.has_result for p in self.parts)


@dataclass(frozen=True, slots=True)
class NewSummary:
    """A summary node to commit: a leaf covers messages, a condensed node covers summaries.

    ``sources`` are the ids of the context items it replaces, in order; they
    must be contiguous in the session's context view.
    """

    id: str
    kind: Literal["leaf", "condensed"]
    depth: int
    level_used: int
    text: str
    token_count: int
    sources: tuple[str, ...]
    first_seq: int
    last_seq: int
    message_count: int
    created_at: float
    model: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """A stored summary node."""

    id: str
    session_id: str
    kind: Literal["leaf", "condensed"]
    depth: int
    level_used: int
    text: str
    token_count: int
    first_seq: int
    last_seq: int
    message_count: int
    created_at: float
    model: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCounters:
    """A session's running counters as the store holds them: every writer's sum."""

    tokens: TokenUsage
    cost: float
    turn_count: int


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What a write did: sequence numbers given and the context versions around it.

    ``rewrites`` is the session's count of context rewrites after the write (see
    :class:`ContextMark`). An append also gives the context positions of the
    messages that joined the view, the session's counters after it and, when it
    recorded a turn snapshot, the turn index the store assigned.
    """

    seqs: tuple[int, ...]
    version_before: int
    version_after: int
    message_ids: tuple[str, ...] = ()
    counters: SessionCounters | None = None
    turn_index: int | None = None
    rewrites: int = 0
    positions: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ContextMark:
    """Where a copy of the context view stands, so a read sends only what it lacks.

    The view changes in two ways: entries appended at its end, with positions
    above every earlier one, and rewrites (a summary replacing a span, pruned
    tool outputs, a pin), which the session counts apart. Between rewrites the
    only in-place change is a tool call's result slot, filled once.

    Attributes:
        version: The context version the copy is exactly (None: it was cut short
            of any version, so what follows it is always read).
        rewrites: The rewrite count it has seen (None: unknown, so any change
            re-reads the whole view).
        last_position: The highest position it holds (0: none).
        awaiting_results: Its message entries whose tool calls await results.
    """

    version: int | None
    rewrites: int | None
    last_position: int
    awaiting_results: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContextChanges:
    """The context view, or what a copy of it at a :class:`ContextMark` lacks, read
    at one version.

    With ``whole``, ``entries`` is the whole view (no mark, or a rewrite since
    it). Otherwise ``entries`` follow the mark's last position, in position
    order, and ``filled`` are the mark's awaiting entries as they are now; both
    are empty when the version is the mark's.
    """

    version: int
    rewrites: int
    whole: bool
    entries: tuple[ContextEntry, ...]
    filled: tuple[ContextEntry, ...] = ()


def searchable_text(part: MessagePart) -> str:
    """What the full-text index holds for a part (its tool result is indexed apart)."""
    if isinstance(part, ToolPart):
        return f"{part.tool_name} {json.dumps(part.input, ensure_ascii=False, default=str)}"
    if isinstance(part, FileRefPart):
        return f"{part.path} {part.content_id} {part.exploration_summary}"
    return part.text


def message_text(message: MessageWithParts) -> str:
    """A message's whole searchable text: parts, tool calls and their results, in order."""
    chunks = []
    for part in message.parts:
        chunks.append(searchable_text(part))
        if isinstance(part, ToolPart) and part.has_result:
            chunks.append(
                part.output if part.output is not None else f"Error: {part.error_message}"
            )
    return "\n".join(chunks)


def merge_tool_result(
    part: MessagePart,
    output: str | None,
    error: str | None,
    status: str | None,
    *,
    pruned_at: float | None = None,
) -> MessagePart:
    """A stored tool call with its result slot and tombstone mark applied.

    ``pruned_at`` is when the output was pruned (Unix seconds, as stored);
    the part's status reports it in milliseconds as ``compacted_at``.
    """
    if not isinstance(part, ToolPart) or status is None:
        return part
    compacted_at = None if pruned_at is None else round(pruned_at * 1000)
    return part.model_copy(
        update={
            "output": output,
            "error_message": error,
            "status": ToolStatus(status, compacted_at=compacted_at),
            "pruned": pruned_at is not None,
        }
    )


def config_json(data: dict[str, Any]) -> str:
    """Deterministic JSON used for stored configuration."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
