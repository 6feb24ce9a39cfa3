"""The storage protocol: an append-only log of sessions, messages and parts.

Everything above this layer talks to :class:`Store` only, so backends
(SQLite now, PostgreSQL next) are interchangeable and share one contract test
suite. Each method that writes is one transaction: it happens whole or not at
all. Rows are appended, never rewritten; the only later writes are the
one-time fill of a tool call's result slot and counters on the session row.

The *context view* is a per-session ordered list of items (messages now,
summaries later) that make up the active context; reading it never scans the
rest of the history.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mnesis.models.info import SessionInfo
from mnesis.models.message import (
    FileRefPart,
    Message,
    MessagePart,
    MessageStatus,
    MessageWithParts,
    Role,
    TokenUsage,
    ToolPart,
    ToolStatus,
)
from mnesis.models.results import TurnSnapshot

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

    @property
    def token_count(self) -> int:
        return sum(self.part_tokens)


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
class AppendOutcome:
    """What an append did: sequence numbers given and the context versions around it."""

    seqs: tuple[int, ...]
    version_before: int
    version_after: int
    message_ids: tuple[str, ...] = ()


class Store(Protocol):
    """What every storage backend provides. All methods are coroutines."""

    url: str

    async def create_session(self, record: SessionRecord) -> None:
        """Insert a new session; the parent, if any, must exist."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord:
        """The session's row; ``SessionNotFoundError`` if there is none."""
        ...

    async def append(
        self,
        session_id: str,
        messages: tuple[NewMessage, ...],
        *,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        snapshot: TurnSnapshot | None = None,
    ) -> AppendOutcome:
        """Append messages (complete ones join the context view), add ``usage``
        and ``cost`` to the session's counters and record ``snapshot``, atomically."""
        ...

    async def fill_tool_results(
        self, session_id: str, results: tuple[ToolResult, ...]
    ) -> AppendOutcome:
        """Fill the result slots of pending tool calls; the outcome names the
        messages that hold them. ``ToolResultError`` if a call is unknown or
        already has a result (then nothing is written)."""
        ...

    async def commit_summary(self, session_id: str, summary: NewSummary) -> AppendOutcome:
        """Store a summary node and swap it into the context view in place of its
        sources, atomically. ``StaleContextError`` if the sources are no longer a
        contiguous run of the view (then nothing is written)."""
        ...

    async def prune_tool_outputs(
        self, session_id: str, tool_call_ids: tuple[str, ...]
    ) -> AppendOutcome:
        """Tombstone completed tool outputs in the context (the originals stay)."""
        ...

    async def pin(self, session_id: str, message_id: str) -> AppendOutcome:
        """Keep a complete message verbatim in every future context."""
        ...

    async def get_summary(self, summary_id: str) -> SummaryRecord:
        """One summary node; ``KeyError`` if unknown."""
        ...

    async def summary_sources(self, summary_id: str) -> list[tuple[str, str]]:
        """``(kind, id)`` of what a node covers, in order; ``KeyError`` if unknown."""
        ...

    async def search(
        self, session_id: str, terms: tuple[str, ...], *, after: int = 0, limit: int = 200
    ) -> list[tuple[int, str]]:
        """Full-text index hits ``(key, message_id)`` with key > ``after``, in storage
        order: parts of the session holding every term (the last as a prefix)."""
        ...

    async def scan_messages(
        self, session_id: str, *, after_seq: int = 0, limit: int = 200
    ) -> list[MessageWithParts]:
        """The next ``limit`` messages after ``after_seq``, in order (for scans)."""
        ...

    async def get_messages_by_id(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> list[MessageWithParts]:
        """The session's messages with these ids, in sequence order."""
        ...

    async def covering_summaries(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> dict[str, str]:
        """For each summarised message, the summary node in the context that covers it."""
        ...

    async def summary_message_ids(self, summary_id: str) -> list[str]:
        """Every message under a node, recursively, in order; ``KeyError`` if unknown."""
        ...

    async def parent_of(self, node_id: str) -> str | None:
        """The node that directly covers a message or summary, if any."""
        ...

    async def is_pinned(self, session_id: str, message_id: str) -> bool:
        """Whether the message is pinned."""
        ...

    async def list_sessions(self, session_id: str | None = None) -> list[SessionInfo]:
        """Every session (or one), newest first, with message and summary counts."""
        ...

    async def get_file_ref(self, content_id: str) -> FileRefPart | None:
        """The cached reference for a content id, if any."""
        ...

    async def put_file_ref(self, part: FileRefPart, size_bytes: int) -> None:
        """Cache a file reference by its content id (the first one stays)."""
        ...

    async def start_map_run(self, run_id: str, operator: str, fingerprint: str) -> dict[int, str]:
        """Create or reopen an operator run; returns each known item's status.
        ``InvalidInputError`` if the id belongs to a run of other work."""
        ...

    async def set_map_item(
        self, run_id: str, index: int, status: str, result_json: str | None = None
    ) -> None:
        """Record an item's status (and its result once finished)."""
        ...

    async def map_results(self, run_id: str) -> list[tuple[int, str, str | None]]:
        """``(index, status, result_json)`` of every item of a run, in index order."""
        ...

    def compaction_lock(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Try to become the only compactor of a session, across processes and hosts.

        Yields True when held (released on exit), False at once when another
        holder has it. It never blocks turns: appends do not take it.
        """
        ...

    async def get_messages(self, session_id: str) -> list[MessageWithParts]:
        """The whole stored history of the session, in order, failed turns included."""
        ...

    async def get_message(self, message_id: str) -> MessageWithParts:
        """One stored message; ``KeyError`` if unknown."""
        ...

    async def context_entries(self, session_id: str) -> tuple[int, list[ContextEntry]]:
        """The active context view and its version."""
        ...

    async def snapshots(self, session_id: str) -> list[TurnSnapshot]:
        """One snapshot per completed turn, in order."""
        ...

    async def verify(self, session_id: str | None = None) -> list[str]:
        """Re-derive the store's invariants; returns the problems found (none: ``[]``)."""
        ...

    async def close(self) -> None:
        """Release the connection; further calls fail."""
        ...


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


def build_message(message: Message, parts: list[MessagePart]) -> MessageWithParts:
    """Pair a message with its parts (helper shared by the backends)."""
    return MessageWithParts(message=message, parts=parts)


def merge_tool_result(
    part: MessagePart,
    output: str | None,
    error: str | None,
    status: str | None,
    *,
    pruned: bool = False,
) -> MessagePart:
    """A stored tool call with its result slot and tombstone mark applied."""
    if not isinstance(part, ToolPart) or status is None:
        return part
    return part.model_copy(
        update={
            "output": output,
            "error_message": error,
            "status": ToolStatus(status),
            "pruned": pruned,
        }
    )
