"""Stored values as the page's JSON: small, flat, and with nothing the page must parse.

The page escapes every string it shows (stored text is untrusted); these
functions only choose and name the fields.
"""

from __future__ import annotations

import json
from typing import Any

from mnesis.models.info import SessionInfo
from mnesis.models.message import FileRefPart, MessagePart, MessageWithParts, TextPart, ToolPart
from mnesis.models.results import TurnSnapshot
from mnesis.recall import GrepMatch
from mnesis.store.records import ContextEntry, SummaryRecord
from mnesis.web.index import SessionIndex


def session_json(info: SessionInfo) -> dict[str, Any]:
    """One session at a glance."""
    return {
        "id": info.id,
        "model": info.model,
        "agent": info.agent,
        "parent_id": info.parent_id,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "turns": info.turns,
        "messages": info.messages,
        "summaries": info.summaries,
        "tokens": info.tokens.effective_total(),
        "cost": info.cost,
    }


def part_json(part: MessagePart) -> dict[str, Any]:
    """A message part: text, a tool call with its result, or a large-file reference."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolPart):
        return {
            "type": "tool",
            "name": part.tool_name,
            "call_id": part.tool_call_id,
            "input": json.dumps(part.input, ensure_ascii=False, indent=1, default=str),
            "output": part.output,
            "error": part.error_message,
            "state": part.status.state,
            "pruned": part.pruned,
        }
    if isinstance(part, FileRefPart):
        return {
            "type": "file",
            "content_id": part.content_id,
            "path": part.path,
            "file_type": part.file_type,
            "tokens": part.token_count,
            "summary": part.exploration_summary,
        }
    return {"type": "text", "text": str(part)}


def message_json(
    message: MessageWithParts, *, turn: int, covered_by: str | None, pinned: bool
) -> dict[str, Any]:
    """A stored message with where it stands in the context now."""
    meta = message.message
    return {
        "id": message.id,
        "seq": meta.seq,
        "turn": turn,
        "role": meta.role,
        "status": str(meta.status),
        "error": meta.error.message if meta.error else None,
        "created_at": meta.created_at,
        "tokens": meta.token_count,
        "covered_by": covered_by,
        "pinned": pinned,
        "parts": [part_json(p) for p in message.parts],
    }


def summary_json(node: SummaryRecord, children: list[str], in_context: bool) -> dict[str, Any]:
    """A summary node of the DAG."""
    return {
        "id": node.id,
        "kind": node.kind,
        "depth": node.depth,
        "level": node.level_used,
        "tokens": node.token_count,
        "first_seq": node.first_seq,
        "last_seq": node.last_seq,
        "message_count": node.message_count,
        "created_at": round(node.created_at * 1000),
        "children": children,
        "in_context": in_context,
        "text": node.text,
    }


def snapshot_json(snapshot: TurnSnapshot) -> dict[str, Any]:
    """A turn's snapshot: the context's tokens by kind after the turn."""
    tokens = snapshot.context_tokens
    return {
        "turn": snapshot.turn_index,
        "system": tokens.system_prompt,
        "summary": tokens.summary,
        "messages": tokens.messages,
        "tools": tokens.tool_outputs,
        "total": tokens.total,
        "compaction_triggered": snapshot.compaction_triggered,
        "level": snapshot.compact_result.level_used if snapshot.compact_result else None,
    }


def grep_json(match: GrepMatch, index: SessionIndex) -> dict[str, Any]:
    """A grep match with the turn it links to."""
    return {
        "message_id": match.message_id,
        "seq": match.seq,
        "turn": index.turn_of_seq(match.seq),
        "role": match.role,
        "snippet": match.snippet,
        "summary_id": match.summary_id,
    }


def context_entry_json(entry: ContextEntry) -> dict[str, Any]:
    """One item of the context view."""
    return {
        "kind": entry.kind,
        "id": entry.ref_id,
        "role": entry.role,
        "seq": entry.seq,
        "tokens": entry.token_count,
        "pinned": entry.pinned,
        "summary": None
        if entry.summary is None
        else {"kind": entry.summary.kind, "depth": entry.summary.depth},
    }
