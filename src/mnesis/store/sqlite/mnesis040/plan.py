"""What one mnesis 0.4.0 session becomes in our schema: pure, no I/O.

0.4.0 kept a summary as an assistant message (``is_summary``) plus a
``summary_nodes`` row naming the first and last message of its span, or, for a
condensed node, the nodes it merged; its context view lists messages and
summaries by position. Here the conversation's own messages get sequence
numbers 1..n in 0.4.0's order (time, then insertion), summaries become nodes
of our DAG covering exactly those messages (so ``expand`` returns the
originals), and the context view is 0.4.0's, item for item. The result is
checked with the same invariants ``verify()`` re-derives before anything is
written.

What has no place of its own here (message and session metadata, step and
patch parts, the compaction markers, 0.4.0's token estimates) stays verbatim
in the ``mnesis040_*`` tables beside ours; see ``docs/migrating-from-0.4.md``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mnesis.errors import LegacyMigrationError
from mnesis.models.message import (
    FileRefPart,
    MessagePart,
    MessageStatus,
    TextPart,
    TokenUsage,
    ToolPart,
)
from mnesis.store.records import NewMessage, NewPart, SessionRecord, config_json
from mnesis.store.sql.invariants import SessionRows, check_session
from mnesis.store.sqlite.mnesis040.read import (
    OldMessage,
    OldPart,
    OldSessionRows,
    OldSummaryNode,
)
from mnesis.tokens import MESSAGE_OVERHEAD, TokenEstimator

# Parts 0.4.0 stored but never showed the model: kept only in mnesis040_message_parts.
UNSHOWN_PART_TYPES = frozenset({"step_start", "step_finish", "patch", "compaction"})
# What our context adds around a summary's text (its header line), as tokens.
_SUMMARY_HEADER_TOKENS = 40
# 0.4.0 stored the reply of a send() that crashed before any text as an empty message.
EMPTY_REPLY = "mnesis 0.4.0 stored no content for this reply (it was interrupted)"


@dataclass(frozen=True, slots=True)
class PlannedSummary:
    """A summary node as our ``summaries`` and ``summary_sources`` rows hold it."""

    id: str
    kind: str
    depth: int
    level_used: int
    text: str
    token_count: int
    first_seq: int
    last_seq: int
    message_count: int
    model: str | None
    created_at: float
    sources: tuple[tuple[str, str], ...]  # (kind, id) in order


@dataclass(frozen=True, slots=True)
class PartTimes:
    """When 0.4.0 pruned a tool output, or the tool finished (seconds)."""

    message_id: str
    idx: int
    pruned_at: float | None
    completed_at: float | None


@dataclass(slots=True)
class SessionPlan:
    """Everything one session's rows become."""

    record: SessionRecord
    messages: list[tuple[int, NewMessage]] = field(default_factory=list)  # (seq, message)
    part_times: list[PartTimes] = field(default_factory=list)
    summaries: list[PlannedSummary] = field(default_factory=list)  # sources before users
    context: list[tuple[str, str]] = field(default_factory=list)  # (kind, id) in order
    unshown_parts: int = 0  # kept only in mnesis040_message_parts
    orphan_summaries: int = 0  # reachable from nothing in 0.4.0 either; kept in its tables
    restored_messages: int = 0  # in neither 0.4.0's view nor a summary: put back in the view

    @property
    def part_count(self) -> int:
        return sum(len(m.parts) for _, m in self.messages)


def plan_session(rows: OldSessionRows, estimator: TokenEstimator) -> SessionPlan:
    """The session in our schema; ``LegacyMigrationError`` if it cannot be, exactly.

    0.4.0 ordered a session's messages by time, then insertion; when two clocks
    disagreed that order can contradict its own context view, so insertion
    order alone is tried before giving up.
    """
    first = _plan(rows, estimator, lambda m: (m.created_at, m.rowid))
    problems = _check(first)
    if not problems:
        return first
    second = _plan(rows, estimator, lambda m: (m.rowid, 0))
    if not _check(second):
        return second
    raise LegacyMigrationError(f"session {rows.session.id}: {problems[0]}")


def _plan(
    rows: OldSessionRows,
    estimator: TokenEstimator,
    order: Callable[[OldMessage], tuple[int, int]],
) -> SessionPlan:
    s = rows.session
    conversation = sorted((m for m in rows.messages if not m.is_summary), key=order)
    last_write = max([s.updated_at, *(m.created_at for m in rows.messages)])
    plan = SessionPlan(
        SessionRecord(
            id=s.id,
            model=s.model_id,
            agent=s.agent,
            parent_id=s.parent_id,
            system_prompt=s.system_prompt,
            config_json=config_json({}),  # 0.4.0 kept no configuration: ours applies
            created_at=s.created_at / 1000,
            updated_at=last_write / 1000,
            tokens=sum((_usage(m) for m in conversation), TokenUsage()),
            cost=sum(m.cost for m in conversation),
        )
    )
    for seq, old in enumerate(conversation, start=1):
        plan.messages.append((seq, _message(old, rows.parts.get(old.id, []), estimator, plan)))
    seq_of = {m.id: seq for seq, m in plan.messages}
    failed = {m.id for _, m in plan.messages if m.status is not MessageStatus.COMPLETE}
    nodes = _NodePlanner(rows, seq_of, failed, estimator)
    plan.context = _context(rows, plan, nodes, seq_of, failed)
    return plan


def _check(plan: SessionPlan) -> list[str]:
    """The invariants ``verify()`` checks, over the planned rows."""
    return check_session(
        SessionRows(
            session_id=plan.record.id,
            messages=[(m.id, seq, str(m.status)) for seq, m in plan.messages],
            context=plan.context,
            summaries={
                s.id: (s.kind, s.first_seq, s.last_seq, s.message_count) for s in plan.summaries
            },
            sources={s.id: list(s.sources) for s in plan.summaries},
        )
    )


# -- messages and parts ------------------------------------------------------


def _message(
    old: OldMessage, old_parts: list[OldPart], estimator: TokenEstimator, plan: SessionPlan
) -> NewMessage:
    parts: list[NewPart] = []
    for part in old_parts:
        if part.part_type in UNSHOWN_PART_TYPES:
            plan.unshown_parts += 1
            continue
        new = _part(part)
        if isinstance(new, ToolPart) and (part.compacted_at or part.completed_at):
            plan.part_times.append(
                PartTimes(
                    old.id,
                    len(parts),
                    part.compacted_at / 1000 if part.compacted_at and new.has_result else None,
                    part.completed_at / 1000 if part.completed_at else None,
                )
            )
        parts.append(NewPart(new, *_part_tokens(new, estimator)))
    status = MessageStatus.COMPLETE
    error = f"{old.error_code}: {old.error_text or ''}".rstrip(": ") if old.error_code else None
    if old.role == "assistant" and not parts:
        status, error = MessageStatus.FAILED, error or EMPTY_REPLY
    return NewMessage(
        id=old.id,
        role="assistant" if old.role == "assistant" else "user",
        parts=tuple(parts),
        created_at=old.created_at / 1000,
        model=(old.model_id or None) if old.role == "assistant" else None,
        status=status,
        finish_reason=old.finish_reason,
        error=error,
        tokens=_usage(old),
        cost=old.cost,
    )


def _usage(message: OldMessage) -> TokenUsage:
    given, made, read, written, total = message.tokens
    return TokenUsage(input=given, output=made, cache_read=read, cache_write=written, total=total)


def _part(old: OldPart) -> MessagePart:
    """Our part for a 0.4.0 part 0.4.0 showed the model (a reasoning part as text,
    which is how 0.4.0 sent it)."""
    try:
        data: Any = json.loads(old.content)
    except ValueError as exc:
        raise LegacyMigrationError(f"part {old.id} holds no valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LegacyMigrationError(f"part {old.id} holds JSON that is not an object")
    try:
        if old.part_type in ("text", "reasoning"):
            return TextPart(text=data["text"])
        if old.part_type == "file_ref":
            return FileRefPart.model_validate({k: v for k, v in data.items() if k != "type"})
        if old.part_type == "tool":
            return _tool_part(old, data)
    except (KeyError, TypeError, ValidationError) as exc:
        reason = _first_error(exc)
        raise LegacyMigrationError(f"{old.part_type} part {old.id} is malformed: {reason}") from exc
    raise LegacyMigrationError(f"part {old.id} has a type 0.4.0 never wrote: {old.part_type!r}")


def _tool_part(old: OldPart, data: dict[str, Any]) -> ToolPart:
    raw_status = data.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    # 0.4.0 kept the live state in a column, over the copy inside the JSON.
    state = old.tool_state or status.get("state") or "pending"
    output, error = data.get("output"), data.get("error_message")
    if output is not None:
        state = "completed"  # 0.4.0 let a call with its output still say "pending"
    elif error is not None:
        state = "error"
    return ToolPart.model_validate(
        {
            "tool_name": data["tool_name"],
            "tool_call_id": data["tool_call_id"],
            "input": data.get("input") or {},
            "output": output,
            "error_message": error,
            "status": state,
        }
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}"
    return str(exc)


def _part_tokens(part: MessagePart, estimator: TokenEstimator) -> tuple[int, int]:
    """Our estimate of a part and of its tool result, as the session counts new ones."""
    if isinstance(part, TextPart):
        return estimator.estimate(part.text), 0
    if isinstance(part, FileRefPart):
        block = f"[FILE {part.content_id} path={part.path} type={part.file_type}]"
        return estimator.estimate(block + "\n" + part.exploration_summary), 0
    call = estimator.estimate(part.tool_name) + estimator.estimate(
        json.dumps(part.input, default=str)
    )
    if not part.has_result:
        return call + 8, 0
    result = part.output if part.output is not None else f"Error: {part.error_message}"
    return call + 8, estimator.estimate(result) + MESSAGE_OVERHEAD


# -- summaries ---------------------------------------------------------------


class _NodePlanner:
    """0.4.0's summary nodes as ours, planned when the context view reaches them:
    leaves over the messages of their span, condensed nodes over the nodes they
    merged. A summary message without a node row (written before 0.4.0 kept its
    DAG) becomes a leaf over the messages since the summary before it."""

    def __init__(
        self,
        rows: OldSessionRows,
        seq_of: dict[str, int],
        failed: set[str],
        estimator: TokenEstimator,
    ) -> None:
        self.seq_of = seq_of
        self.failed = failed
        self.estimator = estimator
        self.messages = {m.id: m for m in rows.messages}
        self.planned: dict[str, PlannedSummary] = {}
        self.nodes = {n.id: n for n in rows.nodes}
        self.content = {
            m.id: _summary_message_content(rows.parts.get(m.id, []))
            for m in rows.messages
            if m.is_summary
        }
        in_order = sorted(seq_of, key=seq_of.__getitem__)
        previous = -1
        for m in rows.messages:  # time order
            if not m.is_summary:
                continue
            if m.id not in self.nodes:
                span = [
                    i for i in in_order if previous < self.messages[i].created_at <= m.created_at
                ]
                self.nodes[m.id] = _synthetic_leaf(m, span)
            previous = m.created_at

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.nodes

    def plan(self, node_id: str, depth: int = 0) -> PlannedSummary:
        if node_id in self.planned:
            return self.planned[node_id]
        node = self.nodes.get(node_id)
        if node is None:
            raise LegacyMigrationError(f"a condensed summary merges an unknown node {node_id}")
        if depth > len(self.nodes):
            raise LegacyMigrationError(f"summary {node_id} is part of a cycle")
        if node.kind == "condensed":
            sources, node_depth, first, last, count = self._condensed(node, depth)
        else:
            sources, node_depth, first, last, count = self._leaf(node)
        text, level = self.content.get(node_id, (None, None))
        text = node.content if text is None else text
        message = self.messages.get(node_id)
        self.planned[node_id] = PlannedSummary(
            id=node_id,
            kind="condensed" if node.kind == "condensed" else "leaf",
            depth=node_depth,
            level_used=min(3, max(1, level if level is not None else node.compaction_level)),
            text=text,
            token_count=self.estimator.estimate(text) + _SUMMARY_HEADER_TOKENS,
            first_seq=first,
            last_seq=last,
            message_count=count,
            model=(message.model_id if message else "") or node.model_id or None,
            created_at=(message.created_at if message else node.created_at) / 1000,
            sources=sources,
        )
        return self.planned[node_id]

    def _condensed(self, node: OldSummaryNode, depth: int) -> _Coverage:
        try:
            merged = json.loads(node.parent_node_ids)
        except ValueError as exc:
            raise LegacyMigrationError(f"summary {node.id} names its nodes in bad JSON") from exc
        if not isinstance(merged, list) or not merged:
            raise LegacyMigrationError(f"condensed summary {node.id} merges no node")
        children = sorted((self.plan(str(c), depth + 1) for c in merged), key=_by_first_seq)
        return (
            tuple(("summary", c.id) for c in children),
            max(c.depth for c in children) + 1,
            children[0].first_seq,
            children[-1].last_seq,
            sum(c.message_count for c in children),
        )

    def _leaf(self, node: OldSummaryNode) -> _Coverage:
        seq_of = self.seq_of
        if node.span_start not in seq_of or node.span_end not in seq_of:
            raise LegacyMigrationError(
                f"summary {node.id} spans messages that are not in its session "
                f"({node.span_start or '?'} to {node.span_end or '?'})"
            )
        low, high = seq_of[node.span_start], seq_of[node.span_end]
        ids = sorted(
            (m for m, seq in seq_of.items() if low <= seq <= high and m not in self.failed),
            key=seq_of.__getitem__,
        )
        if not ids:
            raise LegacyMigrationError(f"summary {node.id} covers no stored message")
        return (
            tuple(("message", m) for m in ids),
            0,
            seq_of[ids[0]],
            seq_of[ids[-1]],
            len(ids),
        )


# sources, depth, first seq, last seq, message count
_Coverage = tuple[tuple[tuple[str, str], ...], int, int, int, int]


def _by_first_seq(summary: PlannedSummary) -> int:
    return summary.first_seq


def _summary_message_content(parts: list[OldPart]) -> tuple[str | None, int | None]:
    """The text and escalation level 0.4.0 read from a summary message's parts."""
    text: str | None = None
    level: int | None = None
    for part in parts:
        try:
            data = json.loads(part.content)
        except ValueError:
            continue  # 0.4.0 itself fell back to the node row here
        if not isinstance(data, dict):
            continue
        if part.part_type == "text" and isinstance(data.get("text"), str):
            text = data["text"]
        elif part.part_type == "compaction" and isinstance(data.get("level"), int):
            level = data["level"]
    return text, level


def _synthetic_leaf(message: OldMessage, span: list[str]) -> OldSummaryNode:
    return OldSummaryNode(
        id=message.id,
        span_start=span[0] if span else "",
        span_end=span[-1] if span else "",
        content="",
        created_at=message.created_at,
        model_id=message.model_id,
        compaction_level=1,
        kind="leaf",
        parent_node_ids="[]",
        rowid=message.rowid,
    )


# -- the context view ----------------------------------------------------------


def _context(
    rows: OldSessionRows,
    plan: SessionPlan,
    nodes: _NodePlanner,
    seq_of: dict[str, int],
    failed: set[str],
) -> list[tuple[str, str]]:
    """0.4.0's view, item for item; the nodes it reaches become our summaries (the
    rest stay only in 0.4.0's tables), and a complete message neither in the view
    nor under a summary there is put back where its sequence number belongs."""
    view: list[tuple[str, str]] = []
    for kind, ref in rows.context:
        if kind == "summary":
            if ref not in nodes:
                raise LegacyMigrationError(f"the context view holds an unknown summary {ref}")
            nodes.plan(ref)
            view.append(("summary", ref))
        elif ref in failed:
            continue  # an empty reply: 0.4.0 left it out of what it sent, too
        elif ref in seq_of:
            view.append(("message", ref))
        else:
            raise LegacyMigrationError(f"the context view holds an unknown message {ref}")
    summaries = nodes.planned
    plan.summaries = sorted(summaries.values(), key=lambda s: (s.depth, s.first_seq))
    plan.orphan_summaries = len(nodes.nodes) - len(summaries)
    covered = {ref for kind, ref in view if kind == "message"}
    for summary in summaries.values():
        covered.update(ref for kind, ref in summary.sources if kind == "message")
    lost = [m for m in seq_of if m not in covered and m not in failed]
    if lost:
        plan.restored_messages = len(lost)
        starts = [
            summaries[ref].first_seq if kind == "summary" else seq_of[ref] for kind, ref in view
        ]
        for m in sorted(lost, key=seq_of.__getitem__):
            at = bisect.bisect(starts, seq_of[m])
            view.insert(at, ("message", m))
            starts.insert(at, seq_of[m])
    return view
