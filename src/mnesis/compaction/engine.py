"""The compaction engine: one pass = prune, summarise the oldest span, condense.

A pass works on the store's context view, never on a caller's copy: it reads
the view, computes a summary (the slow part, with no lock held, while turns go
on), then commits the summary and swaps it into the view in one transaction
that first checks the span is still where it was. Nothing is deleted: the
summarised messages stay in the log, reachable through the summary's sources.

Every round makes progress or stops: a summary is accepted only if it is
smaller than what it replaces, and level 3 (deterministic truncation) always
is, so a pass cannot loop or stall.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mnesis.compaction import levels
from mnesis.compaction.prompts import AGGRESSIVE, STRUCTURED
from mnesis.compaction.pruner import select_prunable
from mnesis.context import render_summary
from mnesis.errors import StaleContextError
from mnesis.events.bus import EventBus, MnesisEvent
from mnesis.llm.base import LLMProvider
from mnesis.llm.limits import resolve_limits
from mnesis.models.config import MnesisConfig
from mnesis.models.ids import new_id
from mnesis.models.message import TokenUsage
from mnesis.models.results import CompactionResult
from mnesis.store.base import ContextEntry, NewSummary, Store, SummaryRecord
from mnesis.tokens import MESSAGE_OVERHEAD, TokenEstimator

logger = logging.getLogger("mnesis.compaction")

HEADER_TOKENS = 64  # the rendered summary header, generously
MIN_SPAN_TOKENS = 2 * HEADER_TOKENS  # smaller spans cannot shrink
MIN_LEAF_TOKENS = 4 * HEADER_TOKENS  # smaller leaves would be mostly header: condense instead


def entry_tokens(entries: Sequence[ContextEntry]) -> int:
    """Tokens of entries as the context window counts them."""
    return sum(e.token_count + MESSAGE_OVERHEAD for e in entries)


@dataclass(slots=True)
class _Progress:
    level_used: int = 0
    compacted_messages: int = 0
    summary_tokens: int = 0
    last_summary_id: str = ""
    pruned_outputs: int = 0
    pruned_tokens: int = 0


class CompactionEngine:
    """Runs compaction passes for one session."""

    def __init__(
        self,
        *,
        session_id: str,
        session_model: str,
        store: Store,
        provider: LLMProvider,
        config: MnesisConfig,
        bus: EventBus,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.provider = provider
        self.config = config
        self.bus = bus
        cfg = config.compaction
        self.model = cfg.compaction_model or session_model
        overrides = config.model_overrides if self.model == session_model else None
        self.model_limits = resolve_limits(self.model, overrides)
        self.estimator = TokenEstimator(self.model)
        self._lock = asyncio.Lock()
        self._pass_usage: list[tuple[TokenUsage, float | None]] = []

    # -- thresholds -------------------------------------------------------------

    def soft_limit(self, usable: int) -> int:
        """Above this many tokens a background pass starts."""
        return int(usable * self.config.compaction.soft_threshold_fraction)

    def goal(self, usable: int) -> int:
        """What a pass aims for: half the soft limit, so passes stay rare."""
        return max(self.soft_limit(usable) // 2, 1)

    # -- a pass -----------------------------------------------------------------

    async def run_pass(
        self,
        *,
        usable: int,
        system_tokens: int,
        force: bool = False,
        reason: str = "soft",
        deterministic: bool = False,
    ) -> CompactionResult:
        """Compact the session's context toward :meth:`goal`; never raises for a
        summariser failure (level 3 needs no model).

        ``deterministic`` runs level 3 only, and runs even while another process
        holds the compaction lock: the last resort of a turn that must not send
        a request past the budget. Its commits are as safe as any (a span that
        moved is refused and retried), only the work may overlap.
        """
        async with self._lock, self.store.compaction_lock(self.session_id) as held:
            started = time.perf_counter()
            self._pass_usage = []
            _, entries = await self.store.context_entries(self.session_id)
            before = system_tokens + entry_tokens(entries)
            if not held and not deterministic:  # another process is compacting right now
                return CompactionResult(
                    session_id=self.session_id,
                    summary_message_id="",
                    level_used=0,
                    compacted_message_count=0,
                    summary_token_count=0,
                    tokens_before=before,
                    tokens_after=before,
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                    skipped=True,
                )
            self.bus.publish(
                MnesisEvent.COMPACTION_TRIGGERED,
                {
                    "session_id": self.session_id,
                    "tokens": before,
                    "threshold": self.soft_limit(usable),
                    "reason": reason,
                },
            )
            try:
                progress = await self._compact(entries, usable, system_tokens, force, deterministic)
            except Exception as exc:
                self.bus.publish(
                    MnesisEvent.COMPACTION_FAILED,
                    {"session_id": self.session_id, "error": f"{type(exc).__name__}: {exc}"},
                )
                raise
            _, entries = await self.store.context_entries(self.session_id)
            result = CompactionResult(
                session_id=self.session_id,
                summary_message_id=progress.last_summary_id,
                level_used=progress.level_used,
                compacted_message_count=progress.compacted_messages,
                summary_token_count=progress.summary_tokens,
                tokens_before=before,
                tokens_after=system_tokens + entry_tokens(entries),
                elapsed_ms=(time.perf_counter() - started) * 1000,
                pruned_tool_outputs=progress.pruned_outputs,
                pruned_tokens=progress.pruned_tokens,
                tokens=sum((u for u, _ in self._pass_usage), TokenUsage()),
                cost=sum(
                    c if c is not None else self.model_limits.cost(u) for u, c in self._pass_usage
                ),
            )
            self.bus.publish(
                MnesisEvent.COMPACTION_COMPLETED,
                {
                    "session_id": self.session_id,
                    "level_used": result.level_used,
                    "tokens_before": result.tokens_before,
                    "tokens_after": result.tokens_after,
                    "compacted_message_count": result.compacted_message_count,
                    "elapsed_ms": result.elapsed_ms,
                    "summary_message_id": result.summary_message_id,
                    "summary_token_count": result.summary_token_count,
                    "pruned_tool_outputs": result.pruned_tool_outputs,
                    "pruned_tokens": result.pruned_tokens,
                },
            )
            return result

    async def _compact(
        self,
        entries: list[ContextEntry],
        usable: int,
        system_tokens: int,
        force: bool,
        deterministic: bool = False,
    ) -> _Progress:
        cfg = self.config.compaction
        progress = _Progress()
        goal = self.goal(usable)
        if cfg.prune:
            ids, saved = select_prunable(
                entries,
                protect_tokens=cfg.prune_protect_tokens,
                minimum_tokens=cfg.prune_minimum_tokens,
                protected_tools=frozenset(cfg.prune_protected_tools),
            )
            if ids:
                await self.store.prune_tool_outputs(self.session_id, tuple(ids))
                progress.pruned_outputs, progress.pruned_tokens = len(ids), saved
                self.bus.publish(
                    MnesisEvent.PRUNE_COMPLETED,
                    {
                        "session_id": self.session_id,
                        "pruned_count": len(ids),
                        "pruned_tokens": saved,
                    },
                )
                _, entries = await self.store.context_entries(self.session_id)
        for round_index in range(cfg.max_compaction_rounds):
            total = system_tokens + entry_tokens(entries)
            if total <= goal and not (force and round_index == 0):
                break
            forced = force and round_index == 0 and total <= goal
            span = self._leaf_span(entries, total - goal, goal, forced=forced)
            kind = "leaf"
            if not span and cfg.condensation_enabled:
                span, kind = self._condense_span(entries), "condensed"
            if not span:
                break
            try:
                summary = await self._summarise(span, kind, deterministic)
            except _NoProgress:
                break
            try:
                await self.store.commit_summary(self.session_id, summary)
            except StaleContextError:
                logger.info("context changed under a compaction round; retrying on the new view")
            else:
                progress.level_used = max(progress.level_used, summary.level_used)
                progress.summary_tokens += summary.token_count
                progress.last_summary_id = summary.id
                if kind == "leaf":
                    progress.compacted_messages += len(span)
            _, entries = await self.store.context_entries(self.session_id)
        return progress

    # -- choosing what to summarise --------------------------------------------

    @staticmethod
    def _tail_start(entries: Sequence[ContextEntry], protect: int) -> int:
        """Index where the protected recent tail begins: the last user turn, and
        further back until ``protect`` tokens are kept."""
        start = max(
            (i for i, e in enumerate(entries) if e.kind == "message" and e.role == "user"),
            default=len(entries),
        )
        kept = entry_tokens(entries[start:])
        while start > 0 and kept + entries[start - 1].token_count <= protect:
            start -= 1
            kept += entries[start].token_count + MESSAGE_OVERHEAD
        return start

    def _leaf_span(
        self, entries: Sequence[ContextEntry], need: int, goal: int, *, forced: bool = False
    ) -> list[ContextEntry]:
        """The oldest run of verbatim, unpinned messages outside the tail, long
        enough to free ``need`` tokens (or as long as the run goes).

        ``forced`` (``session.compact()`` on a context under its goal) protects
        only the latest turn and takes every verbatim message before it, as
        long as a summary can be smaller than the run.
        """
        if forced:
            tail = self._tail_start(entries, 0)
            need, minimum = entry_tokens(entries[:tail]), 1
        else:
            tail = self._tail_start(entries, goal // 2)
            minimum = MIN_LEAF_TOKENS
        index = 0
        while index < tail and (entries[index].kind != "message" or entries[index].pinned):
            index += 1
        span: list[ContextEntry] = []
        removed = 0
        # A summary keeps about a third of its span plus a header, so to free
        # ``need`` tokens in one go the span must be about 1.5x (need + header).
        wanted = max(int((need + HEADER_TOKENS) * 1.5), MIN_LEAF_TOKENS)
        while index < tail and entries[index].kind == "message" and not entries[index].pinned:
            span.append(entries[index])
            removed += entries[index].token_count + MESSAGE_OVERHEAD
            index += 1
            if removed >= wanted:
                break
        return span if removed >= minimum else []

    def _condense_span(self, entries: Sequence[ContextEntry]) -> list[ContextEntry]:
        """Consecutive summaries outside the tail to merge into a higher node.

        Runs of equal depth merge first, lowest depth first, like a binary
        counter, so the DAG stays logarithmically shallow however long the
        session runs; only when no two neighbours share a depth does the whole
        run merge.
        """
        tail = self._tail_start(entries, 0)
        runs: list[list[ContextEntry]] = []
        current: list[ContextEntry] = []
        for entry in entries[:tail]:
            if entry.summary is not None:
                current.append(entry)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        best: list[ContextEntry] = []
        for run in runs:
            start = 0
            for end in range(1, len(run) + 1):
                if end == len(run) or _depth(run[end]) != _depth(run[start]):
                    group = run[start:end]
                    if len(group) >= 2 and (not best or _depth(group[0]) < _depth(best[0])):
                        best = group
                    start = end
        if not best:
            best = max(runs, key=len, default=[])
        return best if len(best) >= 2 and entry_tokens(best) >= MIN_SPAN_TOKENS else []

    # -- summarising ------------------------------------------------------------

    async def _summarise(
        self, span: Sequence[ContextEntry], kind: str, deterministic: bool = False
    ) -> NewSummary:
        cfg = self.config.compaction
        blocks = levels.transcript_of(span)
        input_tokens = entry_tokens(span)
        budget = min(cfg.compaction_output_budget, max(64, input_tokens // 3))
        identifiers = levels.identifiers_in(span)
        cap = max(self.model_limits.context_limit - budget - 1_000, 512)
        chunks = levels.chunk_blocks(blocks, cap, self.estimator)
        attempts = [(1, cfg.compaction_prompt or STRUCTURED, budget)]
        if cfg.level2_enabled:
            attempts.append((2, AGGRESSIVE, max(budget // 2, 32)))
        if deterministic:
            attempts = []
        for level, prompt, level_budget in attempts:
            try:
                text = await levels.llm_summary(
                    self.provider,
                    self.model,
                    prompt,
                    chunks,
                    level_budget,
                    seconds=cfg.summary_timeout,
                    usage=self._pass_usage,
                )
            except Exception as exc:  # the summariser failing is what level 3 is for
                logger.warning("compaction level %d failed: %s", level, exc)
                continue
            summary = self._node(
                span, kind, level, levels.with_identifier_footer(text, identifiers)
            )
            if summary.token_count < input_tokens:
                return summary
            logger.info("compaction level %d did not shrink its input; escalating", level)
        room = (input_tokens - HEADER_TOKENS) // 2
        if room < 1:
            raise _NoProgress
        text = levels.truncate(blocks, room, self.estimator)
        summary = self._node(span, kind, 3, levels.with_identifier_footer(text, identifiers))
        if summary.token_count >= input_tokens:
            summary = self._node(span, kind, 3, text)
        if summary.token_count >= input_tokens:
            raise _NoProgress
        return summary

    def _node(self, span: Sequence[ContextEntry], kind: str, level: int, text: str) -> NewSummary:
        children = [e.summary for e in span if e.summary is not None]
        first = min(c.first_seq for c in children) if children else span[0].seq
        last = max(c.last_seq for c in children) if children else span[-1].seq
        count = sum(c.message_count for c in children) if children else len(span)
        depth = max((c.depth for c in children), default=-1) + 1
        summary_id = new_id("sum")
        record = SummaryRecord(
            id=summary_id,
            session_id=self.session_id,
            kind="leaf" if kind == "leaf" else "condensed",
            depth=depth,
            level_used=level,
            text=text,
            token_count=0,
            first_seq=first,
            last_seq=last,
            message_count=count,
            created_at=time.time(),
            model=self.model if level < 3 else None,
        )
        tokens = self.estimator.estimate(render_summary(record))
        return NewSummary(
            id=summary_id,
            kind=record.kind,
            depth=depth,
            level_used=level,
            text=text,
            token_count=tokens,
            sources=tuple(e.ref_id for e in span),
            first_seq=first,
            last_seq=last,
            message_count=count,
            created_at=record.created_at,
            model=record.model,
        )


def _depth(entry: ContextEntry) -> int:
    return entry.summary.depth if entry.summary is not None else -1


class _NoProgress(Exception):
    """The span is too small for any summary to be smaller than it."""
