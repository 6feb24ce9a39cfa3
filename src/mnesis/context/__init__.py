"""Assembling the active context under a budget: pure, no I/O."""

from mnesis.context.cache import needs_cache_breakpoints, with_cache_breakpoints
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
    "needs_cache_breakpoints",
    "render_entry",
    "render_file_block",
    "render_summary",
    "summary_header",
    "tool_signature",
    "with_cache_breakpoints",
]
