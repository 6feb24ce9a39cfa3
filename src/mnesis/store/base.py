"""The storage protocol: an append-only log of sessions, messages and parts.

Everything above this layer talks to :class:`Store` only, so backends (SQLite,
PostgreSQL) are interchangeable and share one contract test suite. Each method
that writes is one transaction: it happens whole or not at all. Rows are
appended, never rewritten; the only later writes are the one-time fill of a
tool call's result slot and counters on the session row.

The *context view* is a per-session ordered list of items (messages and
summaries) that make up the active context; reading it never scans the rest
of the history.

The protocol is a small required core, :class:`MessageLog`, plus one
sub-protocol per capability (:class:`SummaryDAG`, :class:`RecallIndex`,
:class:`FileRefs`, :class:`MapRuns`, :class:`CompactionLocks`,
:class:`ReplyDrafts`); :class:`Store`
is all of them, which every mnesis backend provides (:class:`VectorIndex`, for
meaning-based recall, stands apart). Each capability is
``runtime_checkable``, so ``isinstance(store, MapRuns)`` is its type guard.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from mnesis.models.info import SessionInfo
from mnesis.models.message import FileRefPart, MessageWithParts, TokenUsage
from mnesis.models.results import TurnSnapshot
from mnesis.store.drafts import ReplyDraft
from mnesis.store.outline import SessionOutline
from mnesis.store.records import (
    PRUNED_MARKER,
    PRUNED_MARKER_TOKENS,
    AppendOutcome,
    ContextChanges,
    ContextEntry,
    ContextMark,
    NewMessage,
    NewPart,
    NewSummary,
    SessionRecord,
    SummaryRecord,
    ToolResult,
    merge_tool_result,
    message_text,
    searchable_text,
)
from mnesis.store.vectors import EmbeddingBacklog, EmbeddingTask, NewEmbedding, StoredEmbedding

__all__ = [
    "PRUNED_MARKER",
    "PRUNED_MARKER_TOKENS",
    "AppendOutcome",
    "CompactionLocks",
    "ContextChanges",
    "ContextEntry",
    "ContextMark",
    "Erasure",
    "FileRefs",
    "MapRuns",
    "MessageLog",
    "NewMessage",
    "NewPart",
    "NewSummary",
    "RecallIndex",
    "ReplyDraft",
    "ReplyDrafts",
    "SessionOutlines",
    "SessionRecord",
    "Store",
    "SummaryDAG",
    "SummaryRecord",
    "ToolResult",
    "VectorIndex",
    "merge_tool_result",
    "message_text",
    "searchable_text",
]


@runtime_checkable
class MessageLog(Protocol):
    """The required core: sessions, the append-only log, its reads and checks."""

    url: str

    async def create_session(self, record: SessionRecord) -> None:
        """Insert a new session; the parent, if any, must exist."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord:
        """The session's row; ``SessionNotFoundError`` if there is none."""
        ...

    async def list_sessions(self, session_id: str | None = None) -> list[SessionInfo]:
        """Every session (or one), newest first, with message and summary counts."""
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
        """Append messages (complete ones join the context view, at the end), add
        ``usage`` and ``cost`` to the session's counters and record ``snapshot``,
        atomically.

        The store numbers everything inside the transaction, never from a count a
        process keeps: the messages' sequence numbers, their context positions and
        the snapshot's ``turn_index`` (whatever the snapshot says). The outcome
        carries them, the context versions around the append and the session's
        counters after it (every writer's turns summed)."""
        ...

    async def fill_tool_results(
        self, session_id: str, results: tuple[ToolResult, ...]
    ) -> AppendOutcome:
        """Fill the result slots of pending tool calls; the outcome names the
        messages that hold them. ``ToolResultError`` if a call is unknown or
        already has a result (then nothing is written)."""
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

    async def context_changes(self, session_id: str, since: ContextMark | None) -> ContextChanges:
        """What a copy of the context view at ``since`` lacks, read at one version.

        Without a rewrite since the mark, only the entries after its last position
        and its awaiting entries are read; after one (or with no mark), the whole
        view."""
        ...

    async def snapshots(
        self, session_id: str, *, after_turn: int = 0, through_turn: int | None = None
    ) -> list[TurnSnapshot]:
        """One snapshot per completed turn after ``after_turn`` (up to
        ``through_turn`` when given), in order."""
        ...

    def snapshots_now(
        self, session_id: str, *, after_turn: int = 0, through_turn: int | None = None
    ) -> list[TurnSnapshot]:
        """What :meth:`snapshots` returns, read synchronously: the calling thread
        (the event loop's too) waits for the read. For synchronous callers only,
        such as the list ``session.history()`` returns."""
        ...

    async def verify(self, session_id: str | None = None) -> list[str]:
        """Re-derive the store's invariants; returns the problems found (none: ``[]``)."""
        ...

    def serves_running_loop(self) -> bool:
        """Whether this open store may be used from the running event loop (a
        connection pool belongs to the loop that made it)."""
        ...

    async def close(self) -> None:
        """Release the connection; further calls fail."""
        ...


@runtime_checkable
class SummaryDAG(Protocol):
    """Summary nodes over the log, swapped into the context view; tombstones and pins."""

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

    async def is_pinned(self, session_id: str, message_id: str) -> bool:
        """Whether the message is pinned."""
        ...

    async def get_summary(self, summary_id: str) -> SummaryRecord:
        """One summary node; ``KeyError`` if unknown."""
        ...

    async def summary_sources(self, summary_id: str) -> list[tuple[str, str]]:
        """``(kind, id)`` of what a node covers, in order; ``KeyError`` if unknown."""
        ...

    async def covering_summaries(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> dict[str, str]:
        """For each summarised message, the summary node of ``session_id`` in the
        context that covers it (the top of its chain)."""
        ...

    async def summary_message_ids(self, summary_id: str) -> list[str]:
        """Every message under a node, recursively, in order; ``KeyError`` if unknown."""
        ...

    async def parent_of(self, node_id: str) -> str | None:
        """The node that directly covers a message or summary, if any."""
        ...


@runtime_checkable
class RecallIndex(Protocol):
    """Finding stored messages again: full-text hits, scans and lookups by id."""

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


@runtime_checkable
class FileRefs(Protocol):
    """A cache of large-file references by content id."""

    async def get_file_ref(self, content_id: str) -> FileRefPart | None:
        """The cached reference for a content id, if any."""
        ...

    async def put_file_ref(self, part: FileRefPart, size_bytes: int) -> None:
        """Cache a file reference by its content id (the first one stays)."""
        ...


@runtime_checkable
class MapRuns(Protocol):
    """Resumable operator runs: each item's status and result."""

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


@runtime_checkable
class CompactionLocks(Protocol):
    """One compactor per session, across processes and hosts."""

    def compaction_lock(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Try to become the only compactor of a session, across processes and hosts.

        Yields True when held (released on exit), False at once when another
        holder has it. It never blocks turns: appends do not take it.
        """
        ...


@runtime_checkable
class ReplyDrafts(Protocol):
    """A streaming reply's text, saved now and then, so a dead process loses none of it."""

    async def save_draft(self, session_id: str, message_id: str, text: str) -> None:
        """Save (or replace) the text so far of the reply ``message_id``, owned by
        this process."""
        ...

    async def discard_draft(self, message_id: str) -> None:
        """Forget a draft: its reply, or its failure, is stored."""
        ...

    async def reply_drafts(self, session_id: str) -> list[ReplyDraft]:
        """The session's drafts, oldest first, with the process that writes each."""
        ...

    async def settle_draft(self, session_id: str, interrupted: NewMessage) -> bool:
        """Replace an abandoned draft by ``interrupted``, a failed message with the
        draft's id and text, atomically; False (nothing stored) when it is gone
        already or its reply was stored."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Vectors of stored texts per embedder, for meaning-based recall (not part of
    :class:`Store`: a backend without it still serves full-text recall)."""

    async def embedding_backlog(
        self, session_id: str, embedder: str, *, after_seq: int = 0, limit: int = 200
    ) -> EmbeddingBacklog:
        """Bodies of the ``limit`` messages after ``after_seq`` with no vector yet."""
        ...

    async def summary_backlog(
        self, session_id: str, embedder: str, *, limit: int = 50
    ) -> list[EmbeddingTask]:
        """Summaries of the session with no vector yet."""
        ...

    async def save_embeddings(self, embedder: str, rows: tuple[NewEmbedding, ...]) -> None:
        """Store vectors in one transaction; a chunk stored already stays as it is."""
        ...

    async def load_embeddings(
        self, session_id: str, embedder: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEmbedding]:
        """The session's vectors stored after ``after_id``, in storage order."""
        ...

    async def count_embeddings(self, session_id: str, embedder: str) -> int:
        """How many chunks of the session have a stored vector (empty ones included)."""
        ...

    async def summaries_with(
        self, session_id: str, word: str, *, limit: int = 50
    ) -> list[tuple[str, str]]:
        """``(id, text)`` of summaries whose text holds ``word`` (any case), oldest first."""
        ...


@runtime_checkable
class Erasure(Protocol):
    """Deleting what was stored, for data that must go (a privacy request); the one
    exception to appending, and not part of :class:`Store`: check with ``isinstance``."""

    async def erase_session(self, session_id: str) -> None:
        """Delete the session and every row holding its content, in one transaction:
        messages, parts, summaries, pins, the context view, snapshots, drafts,
        vectors and full-text entries; sessions it parented only lose the link.

        Raises:
            SessionNotFoundError: No session with that id.
        """
        ...

    async def erase_latest_message(self, session_id: str, message_id: str) -> AppendOutcome:
        """Delete the session's latest message while it is verbatim at the end of the
        context (not pinned), with its parts, vectors and full-text entries.

        Raises:
            InvalidInputError: It is not the latest message, or not verbatim at the end.
        """
        ...


@runtime_checkable
class SessionOutlines(Protocol):
    """A session's history as numbers and times, for readers that lay out a long
    history (the web inspector); not part of :class:`Store`."""

    async def session_outline(self, session_id: str) -> SessionOutline:
        """Every message's role, status, time and tokens, every tool call's tokens
        and result/prune times, every turn's snapshot and append time, the summary
        nodes with their sources and the pins, read in one snapshot without parsing
        any part. ``SessionNotFoundError`` if there is no such session."""
        ...


@runtime_checkable
class Store(
    MessageLog, SummaryDAG, RecallIndex, FileRefs, MapRuns, CompactionLocks, ReplyDrafts, Protocol
):
    """Everything a mnesis backend provides; sessions need all of it."""
