"""A session's shape without its text: what a reader needs to lay out a long history.

Reading a 20,000-turn session's messages with their parts parses every part's
JSON; a page that shows 50 turns, a chart of every turn and the summary DAG
needs none of that text. The outline is one read of numbers and times (each
message's role, status, time and tokens; each tool call's tokens and when its
result arrived and when it was pruned; each turn's snapshot and append time;
the summaries with what they cover; the pins), consistent in one snapshot of
the database. From it the context of any past turn can be recomputed: the log
is append-only, and every change to the context view is dated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mnesis.models.message import Role
from mnesis.models.results import TurnSnapshot
from mnesis.store.records import SummaryRecord


@dataclass(frozen=True, slots=True)
class MessageOutline:
    """One stored message, without its parts.

    Attributes:
        token_count: Tokens of every part now, tool results filled since included.
        created_at: When the message was made (Unix seconds).
    """

    id: str
    seq: int
    role: Role
    status: str
    created_at: float
    token_count: int


@dataclass(frozen=True, slots=True)
class ToolOutline:
    """One tool call part: its tokens and the times its result slot changed.

    Attributes:
        call_tokens: Tokens of the call (name and input).
        result_tokens: Tokens of its result, once there is one.
        completed_at: When the result was stored (Unix seconds), if it was.
        pruned_at: When the output was tombstoned in the context, if it was.
        has_result: Whether an output or an error is stored.
    """

    message_id: str
    tool_call_id: str
    call_tokens: int
    result_tokens: int
    completed_at: float | None
    pruned_at: float | None
    has_result: bool


@dataclass(frozen=True, slots=True)
class TurnOutline:
    """A completed turn: its snapshot and when the store appended it (Unix seconds)."""

    snapshot: TurnSnapshot
    created_at: float


@dataclass(frozen=True, slots=True)
class SessionOutline:
    """A session's history as numbers and times, read in one snapshot.

    Attributes:
        messages: Every message, in sequence order.
        tools: Every tool call part, in storage order.
        turns: Every completed turn, in order.
        summaries: Every summary node of the session, oldest first.
        sources: Each node's sources (message or summary ids), in order.
        pins: Each pinned message's id and when it was pinned (Unix seconds).
    """

    messages: list[MessageOutline] = field(default_factory=list)
    tools: list[ToolOutline] = field(default_factory=list)
    turns: list[TurnOutline] = field(default_factory=list)
    summaries: list[SummaryRecord] = field(default_factory=list)
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pins: dict[str, float] = field(default_factory=dict)
