"""What the model received on a past turn, rebuilt from the log and checked.

The store keeps only the current context view, but every change to it is in
the log with its time: messages join it when appended (complete ones, in
sequence order), a summary replaces its sources when committed (its
``created_at``), a tool output is tombstoned when pruned (``pruned_at``) and a
pending tool call gets its result when filled (``completed_at``). So the view
just before turn N was appended is: every complete message before the turn's
reply, with each summary made before the turn in place of what it covers,
outputs pruned before it as tombstones and results filled after it absent.

The turn's snapshot was taken from the live view at that moment, counting the
reply as it was appended (its tokens plus one message's framing, as
:meth:`mnesis.session.writer.SessionWriter.snapshot` does). Recomputing that
sum from the rebuilt view and comparing it with the snapshot says whether the
rebuild is what the model had; when they differ, the page says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnesis.context.window import ContextWindow, render_entry
from mnesis.models.message import MessagePart, MessageWithParts, ToolPart, ToolStatus
from mnesis.models.results import ContextBreakdown
from mnesis.store.outline import MessageOutline, ToolOutline
from mnesis.store.records import PRUNED_MARKER, PRUNED_MARKER_TOKENS, ContextEntry, SummaryRecord
from mnesis.tokens import MESSAGE_OVERHEAD


@dataclass(frozen=True, slots=True)
class TurnView:
    """Which stored items made up the context of one turn, in order."""

    cutoff: float  # changes to the view after it are not in it
    items: list[MessageOutline | SummaryRecord]
    reply: MessageOutline
    stored: float  # when the turn was appended: the reply is as it was then


def view_before(
    messages: list[MessageOutline],
    reply_at: int,
    summaries: list[SummaryRecord],
    sources: dict[str, tuple[str, ...]],
    cutoff: float,
    stored: float,
) -> TurnView:
    """The context view of the reply at position ``reply_at``, stored at ``stored``,
    as it was at ``cutoff``."""
    in_effect = [s for s in summaries if s.created_at <= cutoff]
    covered = {ref for s in in_effect for ref in sources.get(s.id, ())}
    items: list[MessageOutline | SummaryRecord] = [
        m for m in messages[:reply_at] if m.status == "complete" and m.id not in covered
    ]
    items += [s for s in in_effect if s.id not in covered]
    items.sort(key=lambda item: item.seq if isinstance(item, MessageOutline) else item.first_seq)
    return TurnView(cutoff, items, messages[reply_at], stored)


def outline_total(view: TurnView, tools: dict[str, list[ToolOutline]], system_tokens: int) -> int:
    """The snapshot's total for a view, from the outline's numbers alone: every item's
    tokens and framing (a reply with tool calls renders one message per call more),
    the system prompt, and the reply as the writer counts it."""
    total = system_tokens
    for item in view.items:
        if isinstance(item, SummaryRecord):
            total += item.token_count + MESSAGE_OVERHEAD
            continue
        calls = tools.get(item.id, [])
        rendered_count = 1 if item.role == "user" or not calls else 1 + len(calls)
        total += tokens_at(item, calls, view.cutoff) + MESSAGE_OVERHEAD * rendered_count
    reply_tools = tools.get(view.reply.id, [])
    return total + tokens_at(view.reply, reply_tools, view.stored) + MESSAGE_OVERHEAD


def matching_view(
    views: list[TurnView], tools: dict[str, list[ToolOutline]], system_tokens: int, total: int
) -> TurnView | None:
    """The first of ``views`` whose total is the recorded ``total``, if any."""
    for view in views:
        if outline_total(view, tools, system_tokens) == total:
            return view
    return None


def tool_at(tool: ToolOutline, cutoff: float) -> str:
    """A tool call's result slot at ``cutoff``: ``"pruned"``, ``"result"`` or ``"pending"``."""
    if tool.has_result and tool.pruned_at is not None and tool.pruned_at <= cutoff:
        return "pruned"
    if tool.has_result and (tool.completed_at is None or tool.completed_at <= cutoff):
        return "result"  # a result stored with its call may predate completion times
    return "pending"


def tokens_at(message: MessageOutline, tools: list[ToolOutline], cutoff: float) -> int:
    """The tokens a message held in the context at ``cutoff``."""
    text = message.token_count - sum(t.call_tokens + t.result_tokens for t in tools)
    return text + sum(_tool_tokens(t, cutoff) for t in tools)


def _tool_tokens(tool: ToolOutline, cutoff: float) -> int:
    state = tool_at(tool, cutoff)
    if state == "pruned":
        return tool.call_tokens + PRUNED_MARKER_TOKENS
    return tool.call_tokens + (tool.result_tokens if state == "result" else 0)


def entry_at(
    message: MessageWithParts, outline: MessageOutline, tools: list[ToolOutline], cutoff: float
) -> ContextEntry:
    """A stored message as its context entry was at ``cutoff``."""
    by_call = {t.tool_call_id: t for t in tools}
    text = outline.token_count - sum(t.call_tokens + t.result_tokens for t in tools)
    parts: list[MessagePart] = []
    tokens: list[int] = []
    for part in message.parts:
        tool = by_call.get(part.tool_call_id) if isinstance(part, ToolPart) else None
        if isinstance(part, ToolPart) and tool is not None:
            parts.append(_part_at(part, tool_at(tool, cutoff)))
            tokens.append(_tool_tokens(tool, cutoff))
        else:
            parts.append(part)
            tokens.append(text)
            text = 0  # the text parts' tokens, all on the first of them
    return ContextEntry(
        "message",
        message.id,
        message.message.role,
        tuple(parts),
        tuple(tokens),
        seq=outline.seq,
    )


def _part_at(part: ToolPart, state: str) -> ToolPart:
    if state == "pruned":
        return part.model_copy(update={"output": PRUNED_MARKER, "error_message": None})
    if state == "pending":
        return part.model_copy(
            update={"output": None, "error_message": None, "status": ToolStatus("pending")}
        )
    return part.model_copy(update={"pruned": False})


def summary_entry(record: SummaryRecord) -> ContextEntry:
    """A summary node as its context entry."""
    return ContextEntry(
        "summary",
        record.id,
        "user",
        (),
        (record.token_count,),
        seq=record.first_seq,
        summary=record,
    )


def recorded_sum(window: ContextWindow, system_tokens: int, reply_tokens: int) -> ContextBreakdown:
    """The snapshot's sum for the rebuilt view: the view's breakdown, with the reply
    counted as the writer counts it (its tokens and one message's framing)."""
    seen = window.breakdown(system_tokens)
    extra = reply_tokens + MESSAGE_OVERHEAD
    return seen.model_copy(update={"messages": seen.messages + extra, "total": seen.total + extra})


def check(rebuilt: ContextBreakdown, recorded: ContextBreakdown) -> dict[str, Any]:
    """How the rebuilt context's tokens compare with the ones recorded for the turn."""
    kinds = ("system_prompt", "summary", "messages", "tool_outputs", "total")
    return {
        "matches": rebuilt.total == recorded.total,
        "difference": rebuilt.total - recorded.total,
        "kinds": {
            k: {"rebuilt": getattr(rebuilt, k), "recorded": getattr(recorded, k)} for k in kinds
        },
    }


def rendered(entry: ContextEntry, states: dict[str, str], pinned: bool) -> dict[str, Any]:
    """One item of a turn's context for the page: what it is and the chat messages
    it became in the request."""
    summary = entry.summary
    return {
        "kind": entry.kind,
        "id": entry.ref_id,
        "seq": entry.seq,
        "role": entry.role,
        "tokens": entry.token_count,
        "pinned": pinned,
        "summary": None
        if summary is None
        else {
            "kind": summary.kind,
            "depth": summary.depth,
            "level": summary.level_used,
            "first_seq": summary.first_seq,
            "last_seq": summary.last_seq,
        },
        "tools": states,
        "messages": render_entry(entry),
    }
