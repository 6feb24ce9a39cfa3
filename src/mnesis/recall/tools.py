"""The memory tools a model can call: lcm_grep, lcm_describe, lcm_expand, lcm_search.

Their outputs are plain text capped at ``max_chars`` so an expansion cannot
flood the window; a capped output says how to ask for the next page. The tool
calls and results are stored like any other and are themselves prunable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mnesis.recall.api import Recall
from mnesis.recall.models import GrepMatch, SearchMatch, SummaryDescription
from mnesis.store.base import message_text

MEMORY_TOOL_NAMES = ("lcm_grep", "lcm_describe", "lcm_expand", "lcm_search")


def memory_tool_specs() -> list[dict[str, Any]]:
    """Tool definitions in the OpenAI/litellm function format."""
    return [
        {
            "type": "function",
            "function": {
                "name": "lcm_grep",
                "description": (
                    "Search the full stored history of this conversation, including messages "
                    "that were summarised out of your context. Returns matching messages with "
                    "their ids and the summary that covers each."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "pattern": {"type": "string", "description": "Text to find."},
                        "regex": {"type": "boolean", "description": "Treat as a regex."},
                        "summary_id": {
                            "type": "string",
                            "description": "Only search under this summary.",
                        },
                        "offset": {"type": "integer", "minimum": 0},
                    },
                    "required": ["pattern"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "lcm_describe",
                "description": "Describe a summary id (sum_...) or message id (msg_...).",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "lcm_expand",
                "description": (
                    "Return the original messages a summary (sum_...) replaced, verbatim, "
                    "in order. Long expansions are paged: pass the offset it gives you."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "summary_id": {"type": "string"},
                        "offset": {"type": "integer", "minimum": 0},
                    },
                    "required": ["summary_id"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "lcm_search",
                "description": (
                    "Search the full stored history of this conversation by meaning, not just "
                    "exact words: ask in your own words (e.g. 'which port does the billing "
                    "server use'). Returns the best matching messages first, with their ids "
                    "and the summary that covers each."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look for."},
                        "offset": {"type": "integer", "minimum": 0},
                    },
                    "required": ["query"],
                },
            },
        },
    ]


def _match_lines(
    matches: list[tuple[str, GrepMatch | SearchMatch]], tool: str, next_offset: int | None
) -> list[str]:
    """One line per ``(id, match)``: where it is now and its snippet, then how to page."""
    lines = [
        f"[{ident} #{m.seq} {m.role}"
        + (f", in summary {m.summary_id}" if m.summary_id else ", verbatim in context")
        + f"] {m.snippet}"
        for ident, m in matches
    ] or ["no matches"]
    if next_offset is not None:
        lines.append(f"(more: call {tool} with offset={next_offset})")
    return lines


def _cap(text: str, max_chars: int, hint: str) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(hint) - 2] + "\n" + hint


def memory_tool_handlers(
    recall: Recall, *, max_chars: int = 12_000
) -> dict[str, Callable[..., Awaitable[str]]]:
    """Handlers for the memory tools, bound to one session's recall."""

    async def lcm_grep(
        pattern: str, regex: bool = False, summary_id: str | None = None, offset: int = 0
    ) -> str:
        result = await recall.grep(
            pattern, regex=regex, summary_id=summary_id, offset=offset, limit=10
        )
        lines = _match_lines([(m.message_id, m) for m in result], "lcm_grep", result.next_offset)
        if not result.complete:
            lines.append("(the regex scan stopped at its time budget; results are partial)")
        return _cap("\n".join(lines), max_chars, "(output capped; narrow the pattern)")

    async def lcm_describe(id: str) -> str:
        described = await recall.describe(id)
        data = described.model_dump(mode="json")
        if isinstance(described, SummaryDescription):
            data["text"] = described.text[:2_000]
        return _cap(json.dumps(data, ensure_ascii=False), max_chars, "(output capped)")

    async def lcm_expand(summary_id: str, offset: int = 0) -> str:
        page = await recall.expand(summary_id, offset=offset, limit=50)
        out: list[str] = []
        used = 0
        shown = 0
        for message in page.messages:
            block = f"[{message.id} #{message.message.seq} {message.role}]\n{message_text(message)}"
            if out and used + len(block) > max_chars - 200:
                break
            out.append(block[: max_chars - 200])
            used += len(block)
            shown += 1
        following = offset + shown
        if following < page.total:
            out.append(
                f"(showing {shown} of the {page.total - offset} remaining messages; "
                f"call lcm_expand with offset={following} for more)"
            )
        return "\n\n".join(out) if out else "the summary covers no messages"

    async def lcm_search(query: str, offset: int = 0) -> str:
        result = await recall.search(query, offset=offset, limit=10)
        lines = _match_lines([(m.id, m) for m in result], "lcm_search", result.next_offset)
        return _cap("\n".join(lines), max_chars, "(output capped; narrow the query)")

    return {
        "lcm_grep": lcm_grep,
        "lcm_describe": lcm_describe,
        "lcm_expand": lcm_expand,
        "lcm_search": lcm_search,
    }
