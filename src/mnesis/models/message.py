"""Messages and their parts: the immutable units of the session log.

A message is one turn of one role; its content is an ordered list of parts.
Parts are a discriminated union on ``type`` so that a stored part round-trips
through JSON into the same class.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)


class FinishReason(StrEnum):
    """Why the model stopped generating."""

    STOP = "stop"
    MAX_TOKENS = "max_tokens"
    TOOL_CALLS = "tool_calls"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"


ToolState = Literal["pending", "running", "completed", "error"]


class ToolStatus(BaseModel):
    """Lifecycle of one tool call: ``ToolStatus(state="completed")``, read as
    ``part.status.state``.

    The constants ``ToolStatus.PENDING`` … ``ToolStatus.ERROR`` and a bare
    string both work too: a status equals its state string (``part.status ==
    "completed"``), ``str(status)`` and ``status.value`` are the state, and
    ``ToolStatus("error")`` builds one positionally.
    """

    model_config = ConfigDict(frozen=True)

    PENDING: ClassVar[ToolStatus]
    RUNNING: ClassVar[ToolStatus]
    COMPLETED: ClassVar[ToolStatus]
    ERROR: ClassVar[ToolStatus]

    state: ToolState = "pending"
    compacted_at: int | None = Field(
        default=None, description="Unix ms when the output was pruned; None if not pruned."
    )
    started_at: int | None = None
    completed_at: int | None = None

    def __init__(self, state: str | None = None, /, **data: Any) -> None:
        if state is not None:
            data["state"] = state
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _from_state_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"state": value}
        return value

    @property
    def value(self) -> str:
        """The state, as the enum this type replaces exposed it."""
        return self.state

    def __str__(self) -> str:
        return self.state

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ToolStatus):
            return self.state == other.state and self.compacted_at == other.compacted_at
        if isinstance(other, str):
            return self.state == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.state)


ToolStatus.PENDING = ToolStatus(state="pending")
ToolStatus.RUNNING = ToolStatus(state="running")
ToolStatus.COMPLETED = ToolStatus(state="completed")
ToolStatus.ERROR = ToolStatus(state="error")

ALWAYS_PROTECTED_TOOLS = frozenset({"skill"})
"""Tools whose outputs are never pruned, whatever ``prune_protected_tools`` says."""


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
    status: ToolStatus = Field(default_factory=ToolStatus)
    pruned: bool = False  # the output was tombstoned in the context (it stays stored)

    @field_serializer("status")
    def _status_as_state(self, status: ToolStatus) -> Any:
        # Stored parts keep the plain state string; the prune time, when
        # known, travels with it.
        if status.compacted_at is None and status.started_at is None:
            if status.completed_at is None:
                return status.state
        return status.model_dump()

    @property
    def compacted_at(self) -> int | None:
        """When the output was pruned (Unix ms); ``None`` while it is in the context.

        A part read back pruned whose prune time the store did not report
        gives ``0``; test with ``is not None`` (or read :attr:`pruned`).
        """
        if self.status.compacted_at is not None:
            return self.status.compacted_at
        return 0 if self.pruned else None

    @property
    def is_protected(self) -> bool:
        """True for tools whose outputs are never pruned (``skill``)."""
        return self.tool_name in ALWAYS_PROTECTED_TOOLS

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


ErrorCode = Literal[
    "output_length",
    "aborted",
    "structured_output",
    "auth",
    "api_error",
    "context_overflow",
    "unknown",
]
_ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))


class MessageError(BaseModel):
    """Why an assistant message failed (stored as the text ``"code: message"``)."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode = "unknown"
    message: str
    retriable: bool = False
    provider_error_code: str | None = None

    @classmethod
    def from_text(cls, text: str) -> MessageError:
        """The error as stored: a known code before ``": "`` is its code."""
        code, sep, rest = text.partition(": ")
        if sep and code in _ERROR_CODES:
            return cls(code=code, message=rest)  # type: ignore[arg-type]
        return cls(code="unknown", message=text)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Message(BaseModel):
    """Metadata of one stored message.

    A compaction summary read back through ``session.messages()`` is a message
    too: ``is_summary`` is true, ``mode`` is ``"compaction"``, its one text
    part the summary.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    session_id: str
    seq: int
    role: Role
    created_at: int = Field(description="Unix milliseconds.")
    model: str | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    finish_reason: str | None = None
    error: MessageError | None = None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    cost: float = 0.0
    token_count: int = 0
    is_summary: bool = False
    agent: str = "default"
    parent_id: str | None = None
    mode: str | None = None

    @property
    def model_id(self) -> str:
        """The model string that produced the message (``""`` if none)."""
        return self.model or ""

    @property
    def provider_id(self) -> str:
        """The provider part of :attr:`model_id` (``"anthropic"``), or ``""``."""
        provider, slash, _ = self.model_id.partition("/")
        return provider if slash else ""

    @field_validator("error", mode="before")
    @classmethod
    def _error_from_text(cls, value: Any) -> Any:
        return MessageError.from_text(value) if isinstance(value, str) else value

    @property
    def created_at_ms(self) -> int:
        """:attr:`created_at` (already Unix milliseconds; kept as an alias)."""
        return self.created_at

    @property
    def created_datetime(self) -> datetime:
        """:attr:`created_at` as a timezone-aware ``datetime`` (UTC)."""
        return datetime.fromtimestamp(self.created_at / 1000, tz=UTC)


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

    @property
    def is_summary(self) -> bool:
        """True for a compaction summary."""
        return self.message.is_summary

    @property
    def model_id(self) -> str:
        return self.message.model_id

    @property
    def tokens(self) -> TokenUsage:
        """The usage the model reported for this message (zero for user messages)."""
        return self.message.tokens

    def text_content(self) -> str:
        """The text of all text parts, concatenated in order."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    def tool_parts(self) -> list[ToolPart]:
        """The tool calls of this message, in order."""
        return [p for p in self.parts if isinstance(p, ToolPart)]


def part_to_json(part: TextPart | ToolPart | FileRefPart) -> str:
    """Serialise a part for storage (compact, deterministic)."""
    if type(part) is TextPart:  # the common part, without a pydantic dump
        return json.dumps(
            {"text": part.text, "type": "text"}, separators=(",", ":"), ensure_ascii=False
        )
    return json.dumps(
        part.model_dump(mode="json"), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
