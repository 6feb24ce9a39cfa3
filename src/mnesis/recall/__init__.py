"""Lossless recall: grep, describe and expand over the immutable log, and the
memory tools that let a model use them."""

from mnesis.recall.api import Recall
from mnesis.recall.models import (
    ExpandResult,
    FileDescription,
    GrepMatch,
    GrepResult,
    MessageDescription,
    SearchMatch,
    SearchResult,
    SummaryDescription,
)
from mnesis.recall.tools import MEMORY_TOOL_NAMES, memory_tool_handlers, memory_tool_specs

__all__ = [
    "MEMORY_TOOL_NAMES",
    "ExpandResult",
    "FileDescription",
    "GrepMatch",
    "GrepResult",
    "MessageDescription",
    "Recall",
    "SearchMatch",
    "SearchResult",
    "SummaryDescription",
    "memory_tool_handlers",
    "memory_tool_specs",
]
