"""Assembling the active context under a budget: pure, no I/O."""

from mnesis.context.window import (
    NO_RESULT,
    ContextWindow,
    render_entry,
    render_file_block,
    render_summary,
    summary_header,
    tool_signature,
)

__all__ = [
    "NO_RESULT",
    "ContextWindow",
    "render_entry",
    "render_file_block",
    "render_summary",
    "summary_header",
    "tool_signature",
]
