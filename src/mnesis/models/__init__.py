"""Value types shared by every layer: configuration, messages, results."""

from mnesis.models.config import (
    CompactionConfig,
    FileConfig,
    MnesisConfig,
    OperatorConfig,
    RetryConfig,
    SessionConfig,
    StoreConfig,
)
from mnesis.models.message import (
    FileRefPart,
    FinishReason,
    Message,
    MessagePart,
    MessageStatus,
    MessageWithParts,
    TextPart,
    TokenUsage,
    ToolPart,
    ToolStatus,
)
from mnesis.models.results import (
    CompactionResult,
    ContextBreakdown,
    RecordResult,
    TextDelta,
    TurnComplete,
    TurnResult,
    TurnSnapshot,
)

__all__ = [
    "CompactionConfig",
    "CompactionResult",
    "ContextBreakdown",
    "FileConfig",
    "FileRefPart",
    "FinishReason",
    "Message",
    "MessagePart",
    "MessageStatus",
    "MessageWithParts",
    "MnesisConfig",
    "OperatorConfig",
    "RecordResult",
    "RetryConfig",
    "SessionConfig",
    "StoreConfig",
    "TextDelta",
    "TextPart",
    "TokenUsage",
    "ToolPart",
    "ToolStatus",
    "TurnComplete",
    "TurnResult",
    "TurnSnapshot",
]
