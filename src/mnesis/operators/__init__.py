"""Parallel operators that keep bulk work out of any session's context."""

from mnesis.operators.agentic_map import AgenticMap, tool_writes
from mnesis.operators.llm_map import DEFAULT_RETRY_GUIDANCE, LLMMap, extract_json
from mnesis.operators.results import AgentMapBatch, AgentMapResult, MapBatch, MapResult

__all__ = [
    "DEFAULT_RETRY_GUIDANCE",
    "AgentMapBatch",
    "AgentMapResult",
    "AgenticMap",
    "LLMMap",
    "MapBatch",
    "MapResult",
    "extract_json",
    "tool_writes",
]
