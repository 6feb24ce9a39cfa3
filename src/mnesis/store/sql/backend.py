"""The public store API, once, over the shared algorithms.

:class:`SQLBackend` turns each :class:`~mnesis.store.base.Store` method into an
algorithm from this package and hands it to the backend to run: ``_write`` in
one write transaction, ``_read`` as a read. A backend supplies only those two,
its dialect, opening and closing, and its compaction lock (SQLite leases a row,
PostgreSQL takes an advisory lock).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from mnesis.models.info import SessionInfo
from mnesis.models.message import FileRefPart, MessageWithParts, TokenUsage
from mnesis.models.results import TurnSnapshot
from mnesis.store.drafts import ReplyDraft
from mnesis.store.outline import SessionOutline
from mnesis.store.owners import this_process
from mnesis.store.records import (
    AppendOutcome,
    ContextChanges,
    ContextEntry,
    ContextMark,
    NewMessage,
    NewSummary,
    SessionRecord,
    SummaryRecord,
    ToolResult,
)
from mnesis.store.sql import (
    drafts,
    embeddings,
    erasure,
    file_refs,
    log,
    map_runs,
    reads,
    summary_dag,
)
from mnesis.store.sql.outline import session_outline
from mnesis.store.sql.statements import Dialect, Steps
from mnesis.store.sql.verify import verify
from mnesis.store.vectors import EmbeddingBacklog, EmbeddingTask, NewEmbedding, StoredEmbedding

T = TypeVar("T")


class SQLBackend(ABC):
    """Every :class:`~mnesis.store.base.Store` method, run through ``_write`` / ``_read``."""

    url: str
    dialect: Dialect

    @abstractmethod
    async def _write(self, steps: Steps[T]) -> T:
        """Run ``steps`` in one write transaction (all or nothing)."""

    @abstractmethod
    async def _read(self, steps: Steps[T]) -> T:
        """Run ``steps``, which only read, in one read transaction (one snapshot)."""

    async def _write_turn(self, steps: Steps[T]) -> T:
        """A turn's small write (an append, tool results): ``_write`` unless a
        backend has a faster way for a few rows."""
        return await self._write(steps)

    # A turn's write up to this many tokens counts as small (``_write_turn``);
    # a bigger one (a large tool output) always takes the ordinary path.
    SMALL_WRITE_TOKENS = 16_000

    @abstractmethod
    def _read_blocking(self, steps: Steps[T]) -> T:
        """``_read``, for a synchronous caller: its thread waits (the event loop's
        too, if that is where it is called)."""

    @abstractmethod
    def compaction_lock(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Try to become the only compactor of a session (see the protocol)."""

    @abstractmethod
    def serves_running_loop(self) -> bool:
        """Whether the store may be used from the running event loop."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; further calls fail."""

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return await self._read(reads.schema_version())

    # -- the log -----------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        await self._write(log.create_session(record))

    async def get_session(self, session_id: str) -> SessionRecord:
        return await self._read(log.get_session(session_id))

    async def list_sessions(self, session_id: str | None = None) -> list[SessionInfo]:
        return await self._read(reads.list_sessions(session_id))

    async def append(
        self,
        session_id: str,
        messages: tuple[NewMessage, ...],
        *,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        snapshot: TurnSnapshot | None = None,
    ) -> AppendOutcome:
        steps = log.append(self.dialect, session_id, messages, usage, cost, snapshot)
        tokens = sum(p.token_count + p.result_token_count for m in messages for p in m.parts)
        if tokens > self.SMALL_WRITE_TOKENS:
            return await self._write(steps)
        return await self._write_turn(steps)

    async def fill_tool_results(
        self, session_id: str, results: tuple[ToolResult, ...]
    ) -> AppendOutcome:
        log.check_results(results)
        steps = log.fill_tool_results(self.dialect, session_id, results)
        if sum(r.token_count for r in results) > self.SMALL_WRITE_TOKENS:
            return await self._write(steps)
        return await self._write_turn(steps)

    async def get_messages(self, session_id: str) -> list[MessageWithParts]:
        return await self._read(reads.get_messages(session_id))

    async def get_message(self, message_id: str) -> MessageWithParts:
        return await self._read(reads.get_message(message_id))

    async def context_entries(self, session_id: str) -> tuple[int, list[ContextEntry]]:
        return await self._read(reads.context_entries(session_id))

    async def context_changes(self, session_id: str, since: ContextMark | None) -> ContextChanges:
        return await self._read(reads.context_changes(session_id, since))

    async def snapshots(
        self, session_id: str, *, after_turn: int = 0, through_turn: int | None = None
    ) -> list[TurnSnapshot]:
        return await self._read(reads.snapshots(session_id, after_turn, through_turn))

    def snapshots_now(
        self, session_id: str, *, after_turn: int = 0, through_turn: int | None = None
    ) -> list[TurnSnapshot]:
        return self._read_blocking(reads.snapshots(session_id, after_turn, through_turn))

    async def session_outline(self, session_id: str) -> SessionOutline:
        return await self._read(session_outline(session_id))

    async def verify(self, session_id: str | None = None) -> list[str]:
        return await self._read(verify(session_id))

    async def erase_session(self, session_id: str) -> None:
        await self._write(erasure.erase_session(self.dialect, session_id))

    async def erase_latest_message(self, session_id: str, message_id: str) -> AppendOutcome:
        return await self._write(
            erasure.erase_latest_message(self.dialect, session_id, message_id)
        )

    # -- the summary DAG -----------------------------------------------------------

    async def commit_summary(self, session_id: str, summary: NewSummary) -> AppendOutcome:
        return await self._write(summary_dag.commit_summary(session_id, summary))

    async def prune_tool_outputs(
        self, session_id: str, tool_call_ids: tuple[str, ...]
    ) -> AppendOutcome:
        return await self._write(summary_dag.prune_tool_outputs(session_id, tool_call_ids))

    async def pin(self, session_id: str, message_id: str) -> AppendOutcome:
        return await self._write(summary_dag.pin(session_id, message_id))

    async def is_pinned(self, session_id: str, message_id: str) -> bool:
        return await self._read(summary_dag.is_pinned(session_id, message_id))

    async def get_summary(self, summary_id: str) -> SummaryRecord:
        return await self._read(summary_dag.get_summary(summary_id))

    async def summary_sources(self, summary_id: str) -> list[tuple[str, str]]:
        return await self._read(summary_dag.summary_sources(summary_id))

    async def covering_summaries(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> dict[str, str]:
        return await self._read(summary_dag.covering_summaries(session_id, message_ids))

    async def summary_message_ids(self, summary_id: str) -> list[str]:
        return await self._read(summary_dag.summary_message_ids(summary_id))

    async def parent_of(self, node_id: str) -> str | None:
        return await self._read(summary_dag.parent_of(node_id))

    # -- recall ----------------------------------------------------------------------

    async def search(
        self, session_id: str, terms: tuple[str, ...], *, after: int = 0, limit: int = 200
    ) -> list[tuple[int, str]]:
        return await self._read(reads.search(self.dialect, session_id, terms, after, limit))

    async def scan_messages(
        self, session_id: str, *, after_seq: int = 0, limit: int = 200
    ) -> list[MessageWithParts]:
        return await self._read(reads.scan_messages(session_id, after_seq, limit))

    async def get_messages_by_id(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> list[MessageWithParts]:
        return await self._read(reads.get_messages_by_id(session_id, message_ids))

    # -- file references and operator runs ---------------------------------------

    async def get_file_ref(self, content_id: str) -> FileRefPart | None:
        return await self._read(file_refs.get_file_ref(content_id))

    async def put_file_ref(self, part: FileRefPart, size_bytes: int) -> None:
        await self._write(file_refs.put_file_ref(part, size_bytes))

    async def start_map_run(self, run_id: str, operator: str, fingerprint: str) -> dict[int, str]:
        return await self._write(map_runs.start_map_run(run_id, operator, fingerprint))

    async def set_map_item(
        self, run_id: str, index: int, status: str, result_json: str | None = None
    ) -> None:
        await self._write(map_runs.set_map_item(run_id, index, status, result_json))

    async def map_results(self, run_id: str) -> list[tuple[int, str, str | None]]:
        return await self._read(map_runs.map_results(run_id))

    # -- reply drafts --------------------------------------------------------------

    async def save_draft(self, session_id: str, message_id: str, text: str) -> None:
        owner = this_process()
        await self._write(drafts.save_draft(session_id, message_id, text, owner, time.time()))

    async def discard_draft(self, message_id: str) -> None:
        await self._write(drafts.discard_draft(message_id))

    async def reply_drafts(self, session_id: str) -> list[ReplyDraft]:
        return await self._read(drafts.drafts_of(session_id))

    async def settle_draft(self, session_id: str, interrupted: NewMessage) -> bool:
        return await self._write(drafts.settle_draft(self.dialect, session_id, interrupted))

    # -- vectors for meaning-based recall ------------------------------------------

    async def embedding_backlog(
        self, session_id: str, embedder: str, *, after_seq: int = 0, limit: int = 200
    ) -> EmbeddingBacklog:
        return await self._read(embeddings.backlog(session_id, embedder, after_seq, limit))

    async def summary_backlog(
        self, session_id: str, embedder: str, *, limit: int = 50
    ) -> list[EmbeddingTask]:
        return await self._read(embeddings.summary_backlog(session_id, embedder, limit))

    async def save_embeddings(self, embedder: str, rows: tuple[NewEmbedding, ...]) -> None:
        await self._write(embeddings.save(embedder, rows))

    async def load_embeddings(
        self, session_id: str, embedder: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEmbedding]:
        return await self._read(embeddings.load(session_id, embedder, after_id, limit))

    async def count_embeddings(self, session_id: str, embedder: str) -> int:
        return await self._read(embeddings.count(session_id, embedder))

    async def summaries_with(
        self, session_id: str, word: str, *, limit: int = 50
    ) -> list[tuple[str, str]]:
        return await self._read(embeddings.summaries_with(session_id, word, limit))
