"""Tool-output pruning: tombstone old, bulky tool results outside the protect window."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mnesis.models.message import ToolPart
from mnesis.store.base import PRUNED_MARKER, PRUNED_MARKER_TOKENS, ContextEntry


def select_prunable(
    entries: Sequence[ContextEntry],
    *,
    protect_tokens: int,
    minimum_tokens: int,
    protected_tools: frozenset[str] = frozenset(),
) -> tuple[list[str], int]:
    """Tool calls whose outputs to tombstone, and the tokens that saves.

    Scanning backward from the newest entry, the most recent user turn and the
    first ``protect_tokens`` are left alone; older completed outputs of
    unprotected tools are candidates. Nothing is pruned unless the candidates
    together exceed ``minimum_tokens`` (pruning is worth a cache miss only when
    it frees a lot).
    """
    last_user = max(
        (i for i, e in enumerate(entries) if e.kind == "message" and e.role == "user"), default=0
    )
    seen = 0
    candidates: list[str] = []
    saved = 0
    for index in range(len(entries) - 1, -1, -1):
        entry = entries[index]
        if index >= last_user or seen < protect_tokens:
            seen += entry.token_count
            continue
        seen += entry.token_count
        if entry.summary is not None:
            continue
        for part, tokens in zip(entry.parts, entry.part_tokens, strict=True):
            if (
                isinstance(part, ToolPart)
                and part.has_result
                and part.output != PRUNED_MARKER
                and part.tool_name not in protected_tools
            ):
                call_tokens = len(part.tool_name) // 4 + len(json.dumps(part.input)) // 4 + 8
                gain = tokens - call_tokens - PRUNED_MARKER_TOKENS
                if gain > 0:
                    candidates.append(part.tool_call_id)
                    saved += gain
    if saved <= minimum_tokens:
        return [], 0
    return candidates, saved
