"""Typed payloads of every event, one TypedDict per :class:`MnesisEvent`.

Payloads carry ids, counts and reasons, never message content or credentials.
"""

from __future__ import annotations

from typing import TypedDict


class SessionCreatedPayload(TypedDict):
    session_id: str
    model: str
    agent: str
    parent_id: str | None


class SessionClosedPayload(TypedDict):
    session_id: str


class SessionUpdatedPayload(TypedDict):
    """After a turn, a recorded turn or a compaction changed the session's counters."""

    session_id: str
    turn_count: int
    total_tokens: int
    cost: float


class SessionDeletedPayload(TypedDict):
    """Reserved, as in mnesis 0.4.0: sessions are never deleted, so never published."""

    session_id: str


class MessageUpdatedPayload(TypedDict):
    """Tool results were stored in a message (its token count grew); the stored
    message is otherwise never rewritten."""

    session_id: str
    message_id: str


class PartCreatedPayload(TypedDict):
    """A part was stored with its message (right after that ``message.created``)."""

    session_id: str
    message_id: str
    index: int
    part_type: str


class PartUpdatedPayload(TypedDict):
    """A tool call's result slot was filled (the tool loop or ``record_tool_result(s)``)."""

    session_id: str
    tool_call_id: str
    status: str


class PruneCompletedPayload(TypedDict):
    """Tool outputs were tombstoned in the context by a compaction pass."""

    session_id: str
    pruned_count: int
    pruned_tokens: int


class MessageCreatedPayload(TypedDict):
    session_id: str
    message_id: str
    role: str
    token_count: int
    status: str


class CompactionTriggeredPayload(TypedDict):
    session_id: str
    tokens: int
    threshold: int
    reason: str


class CompactionCompletedPayload(TypedDict):
    session_id: str
    level_used: int
    tokens_before: int
    tokens_after: int
    compacted_message_count: int
    elapsed_ms: float
    summary_message_id: str  # "" when nothing was summarised
    summary_token_count: int
    pruned_tool_outputs: int
    pruned_tokens: int


class CompactionFailedPayload(TypedDict):
    session_id: str
    error: str


class DoomLoopPayload(TypedDict):
    session_id: str
    message_id: str
    tool_name: str
    repeat_count: int


class LLMRetryPayload(TypedDict):
    session_id: str | None
    model: str
    attempt: int
    max_retries: int
    delay_seconds: float
    error: str


class LLMEmptyReplyPayload(TypedDict):
    session_id: str
    model: str
    message_id: str
    finish_reason: str


class MapStartedPayload(TypedDict):
    operator: str
    total: int
    model: str


class MapItemCompletedPayload(TypedDict):
    operator: str
    index: int
    success: bool
    attempts: int
    error_kind: str | None


class MapCompletedPayload(TypedDict):
    operator: str
    total: int
    succeeded: int
    failed: int
    elapsed_ms: float


EventPayload = (
    SessionCreatedPayload
    | SessionClosedPayload
    | MessageCreatedPayload
    | SessionUpdatedPayload
    | SessionDeletedPayload
    | MessageUpdatedPayload
    | PartCreatedPayload
    | PartUpdatedPayload
    | PruneCompletedPayload
    | CompactionTriggeredPayload
    | CompactionCompletedPayload
    | CompactionFailedPayload
    | DoomLoopPayload
    | LLMRetryPayload
    | LLMEmptyReplyPayload
    | MapStartedPayload
    | MapItemCompletedPayload
    | MapCompletedPayload
)
