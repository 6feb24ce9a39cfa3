"""Messages and their parts: the immutable units of the session log.

A message is one turn of one role; its content is an ordered list of parts.
Parts are a discriminated union on ``type`` so that a stored part round-trips
through JSON into the same class.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FinishReason(StrEnum):
    """Why the model stopped generating."""

    STOP = "stop"
    MAX_TOKENS = "max_tokens"
    TOOL_CALLS = "tool_calls"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"


class ToolStatus(StrEnum):
    """Lifecycle of one tool call."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"


class MessageStatus(StrEnum):
    """Whether a stored message finished, is still streaming, or failed."""

    STREAMING = "streaming"
    COMPLETE = "complete"
    FAILED = "failed"


class TokenUsage(BaseModel):
    """Token counts of one call or an accumulated total; usages add with ``+``."""

    model_config = ConfigDict(frozen=True)

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total: int = 0

    def effective_total(self) -> int:
        """``total`` when the provider gave one, else the sum of the parts."""
        return self.total or (self.input + self.output + self.cache_read + self.cache_write)

    def __add__(self, other: object) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            total=self.effective_total() + other.effective_total(),
        )


class TextPart(BaseModel):
    """Plain text content."""

    model_config = ConfigDict(frozen=True)

    type: Literal["text"] = "text"
    text: str


class ToolPart(BaseModel):
    """One tool call and, once known, its result.

    The call (``tool_name``, ``tool_call_id``, ``input``) is immutable once
    stored; the result slot (``output``/``error_message``/``status``) is filled
    exactly once.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["tool"] = "tool"
    tool_name: str = Field(min_length=1)
    tool_call_id: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None
    error_message: str | None = None
    status: ToolStatus = ToolStatus.PENDING
    pruned: bool = False  # the output was tombstoned in the context (it stays stored)

    @property
    def has_result(self) -> bool:
        """True once the call has an output or an error."""
        return self.output is not None or self.error_message is not None


class FileRefPart(BaseModel):
    """A reference to a large file: its content stays on disk, not in the context."""

    model_config = ConfigDict(frozen=True)

    type: Literal["file_ref"] = "file_ref"
    content_id: str
    path: str
    file_type: str
    token_count: int
    exploration_summary: str


MessagePart = Annotated[TextPart | ToolPart | FileRefPart, Field(discriminator="type")]
Role = Literal["user", "assistant"]


class Message(BaseModel):
    """Metadata of one stored message."""

    model_config = ConfigDict(frozen=True)

    id: str
    session_id: str
    seq: int
    role: Role
    created_at: datetime
    model: str | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    finish_reason: str | None = None
    error: str | None = None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    cost: float = 0.0
    token_count: int = 0


class MessageWithParts(BaseModel):
    """A stored message with its parts in order."""

    model_config = ConfigDict(frozen=True)

    message: Message
    parts: list[MessagePart]

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def role(self) -> Role:
        return self.message.role

    def text_content(self) -> str:
        """The text of all text parts, joined by newlines."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    def tool_parts(self) -> list[ToolPart]:
        """The tool calls of this message, in order."""
        return [p for p in self.parts if isinstance(p, ToolPart)]


def part_to_json(part: TextPart | ToolPart | FileRefPart) -> str:
    """Serialise a part for storage (compact, deterministic)."""
    return json.dumps(
        part.model_dump(mode="json"), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
