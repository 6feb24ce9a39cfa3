"""mnesis: lossless memory for LLM applications.

Every message is appended to a durable log and never rewritten; each turn the
engine assembles an active context that fits the model's window.
"""

from mnesis.errors import (
    ConfigError,
    ContextLimitError,
    DatabaseNotFoundError,
    ForeignDatabaseError,
    InvalidInputError,
    LLMError,
    LLMPermanentError,
    LLMTransientError,
    MnesisError,
    MnesisStoreError,
    SchemaVersionError,
    SessionClosedError,
    SessionNotFoundError,
    StaleContextError,
    StoreConstraintError,
    ToolResultError,
    UnknownIdError,
)
from mnesis.events.bus import EventBus, MnesisEvent
from mnesis.llm.mock import MockProvider, MockReply, MockToolCall
from mnesis.models.config import (
    CompactionConfig,
    FileConfig,
    MnesisConfig,
    OperatorConfig,
    SessionConfig,
    StoreConfig,
)
from mnesis.models.info import SessionInfo
from mnesis.models.message import (
    FileRefPart,
    FinishReason,
    MessagePart,
    MessageWithParts,
    TextPart,
    TokenUsage,
    ToolPart,
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
from mnesis.operators import (
    AgenticMap,
    AgentMapBatch,
    AgentMapResult,
    LLMMap,
    MapBatch,
    MapResult,
)
from mnesis.recall.models import SearchMatch, SearchResult
from mnesis.session import MnesisSession
from mnesis.session.search import search
from mnesis.tokens import TokenEstimator

__version__ = "0.1.0"

__all__ = [
    "AgentMapBatch",
    "AgentMapResult",
    "AgenticMap",
    "CompactionConfig",
    "CompactionResult",
    "ConfigError",
    "ContextBreakdown",
    "ContextLimitError",
    "DatabaseNotFoundError",
    "EventBus",
    "FileConfig",
    "FileRefPart",
    "FinishReason",
    "ForeignDatabaseError",
    "InvalidInputError",
    "LLMError",
    "LLMMap",
    "LLMPermanentError",
    "LLMTransientError",
    "MapBatch",
    "MapResult",
    "MessagePart",
    "MessageWithParts",
    "MnesisConfig",
    "MnesisError",
    "MnesisEvent",
    "MnesisSession",
    "MnesisStoreError",
    "MockProvider",
    "MockReply",
    "MockToolCall",
    "OperatorConfig",
    "RecordResult",
    "SchemaVersionError",
    "SearchMatch",
    "SearchResult",
    "SessionClosedError",
    "SessionConfig",
    "SessionInfo",
    "SessionNotFoundError",
    "StaleContextError",
    "StoreConfig",
    "StoreConstraintError",
    "TextDelta",
    "TextPart",
    "TokenEstimator",
    "TokenUsage",
    "ToolPart",
    "ToolResultError",
    "TurnComplete",
    "TurnResult",
    "TurnSnapshot",
    "UnknownIdError",
    "search",
]
