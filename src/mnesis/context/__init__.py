"""Assembling the active context under a budget: pure, no I/O."""

from mnesis.context.window import (
    NO_RESULT,
    ContextWindow,
    render_entry,
    render_file_block,
    tool_signature,
)

__all__ = ["NO_RESULT", "ContextWindow", "render_entry", "render_file_block", "tool_signature"]
