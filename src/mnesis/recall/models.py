"""What grep, describe and expand return."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mnesis.models.message import MessageWithParts


class GrepMatch(BaseModel):
    """One stored message that matches."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    seq: int
    role: str
    created_at: datetime
    snippet: str
    text: str
    summary_id: str | None  # the live summary covering it in the context; None if verbatim


class GrepResult(BaseModel):
    """A page of matches, oldest first; ``next_offset`` is None on the last page."""

    model_config = ConfigDict(frozen=True)

    pattern: str
    regex: bool
    matches: list[GrepMatch]
    offset: int
    next_offset: int | None
    complete: bool = True  # False when a regex scan stopped at its time budget

    def __iter__(self) -> Iterator[GrepMatch]:  # type: ignore[override]
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)

    def __getitem__(self, index: int) -> GrepMatch:
        return self.matches[index]


class SummaryDescription(BaseModel):
    """A summary node: what it covers and where it sits in the DAG."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["summary"] = "summary"
    id: str
    node_kind: Literal["leaf", "condensed"]
    depth: int
    level_used: int
    token_count: int
    first_seq: int
    last_seq: int
    message_count: int
    first_message_id: str | None
    last_message_id: str | None
    parent_id: str | None
    child_ids: list[str]
    in_context: bool
    created_at: datetime
    text: str


class MessageDescription(BaseModel):
    """A stored message and how the context holds it now."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["message"] = "message"
    id: str
    seq: int
    role: str
    status: str
    created_at: datetime
    token_count: int
    pinned: bool
    summary_id: str | None  # the live summary covering it; None if verbatim in the context
    parent_summary_id: str | None  # the leaf that summarised it, if any


class FileDescription(BaseModel):
    """A large-file reference and the state of the file on disk now."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["file"] = "file"
    id: str
    path: str
    file_type: str
    token_count: int
    exploration_summary: str
    status: Literal["unchanged", "changed", "missing"]


class ExpandResult(BaseModel):
    """A page of the original messages under a summary node, verbatim and in order."""

    model_config = ConfigDict(frozen=True)

    summary_id: str
    messages: list[MessageWithParts]
    total: int
    offset: int
    next_offset: int | None


class SearchMatch(BaseModel):
    """One stored message (or summary) that a search found, best first.

    ``matched_by`` says which ranking found it: ``"words"`` (the full-text
    index), ``"meaning"`` (vector similarity) or ``"both"``.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["message", "summary"]
    id: str  # the message's id, or the summary's
    session_id: str
    message_id: str | None  # None for a summary
    seq: int  # the message's; a summary's first covered message's
    role: str  # "user", "assistant", or "summary"
    created_at: datetime
    snippet: str
    text: str
    score: float
    matched_by: Literal["words", "meaning", "both"]
    summary_id: str | None  # the live summary covering it in the context; None if verbatim


class SearchResult(BaseModel):
    """A page of search matches, best first; ``next_offset`` is None on the last page.

    ``semantic`` is False when no embedder was available (full text only).
    """

    model_config = ConfigDict(frozen=True)

    query: str
    matches: list[SearchMatch]
    offset: int
    next_offset: int | None
    semantic: bool

    def __iter__(self) -> Iterator[SearchMatch]:  # type: ignore[override]
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)

    def __getitem__(self, index: int) -> SearchMatch:
        return self.matches[index]
