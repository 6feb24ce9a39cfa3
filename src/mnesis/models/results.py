"""What the session returns: turn results, stream events, snapshots."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mnesis.models.message import FinishReason, TokenUsage, ToolPart


class CompactionResult(BaseModel):
    """The outcome of one compaction pass."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    summary_message_id: str
    level_used: int
    compacted_message_count: int
    summary_token_count: int
    tokens_before: int
    tokens_after: int
    elapsed_ms: float
    pruned_tool_outputs: int = 0
    pruned_tokens: int = 0
    tokens: TokenUsage = Field(default_factory=TokenUsage)  # the summariser's own usage
    cost: float = 0.0
    skipped: bool = False  # another process was compacting this session; nothing was done


class TurnResult(BaseModel):
    """The outcome of one ``send()``."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    text: str
    finish_reason: FinishReason | str
    tokens: TokenUsage
    cost: float = 0.0
    compaction_triggered: bool = False
    compaction_result: CompactionResult | None = None
    doom_loop_detected: bool = False
    tool_calls: list[ToolPart] = Field(default_factory=list)
    user_message_id: str | None = None
    steps: int = 1


class RecordResult(BaseModel):
    """The outcome of one ``record()``."""

    model_config = ConfigDict(frozen=True)

    user_message_id: str
    assistant_message_id: str
    tokens: TokenUsage
    compaction_triggered: bool = False
    doom_loop_detected: bool = False


class TextDelta(BaseModel):
    """A chunk of assistant text, yielded by ``stream()`` as the model produces it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["text_delta"] = "text_delta"
    text: str


class TurnComplete(BaseModel):
    """The last event of ``stream()``: the whole turn's result."""

    model_config = ConfigDict(frozen=True)

    type: Literal["turn_complete"] = "turn_complete"
    result: TurnResult


class ContextBreakdown(BaseModel):
    """Where the tokens of an assembled context went."""

    model_config = ConfigDict(frozen=True)

    system_prompt: int = 0
    summary: int = 0
    messages: int = 0
    tool_outputs: int = 0
    total: int = 0


class TurnSnapshot(BaseModel):
    """The state of the context after one completed turn."""

    model_config = ConfigDict(frozen=True)

    turn_index: int
    role: Literal["user", "assistant"]
    context_tokens: ContextBreakdown
    compaction_triggered: bool = False
    compact_result: CompactionResult | None = None
