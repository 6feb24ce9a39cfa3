"""What the operators return: one result per input, and batches of them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mnesis.models.message import TokenUsage

ErrorKind = Literal["timeout", "validation", "llm_error", "schema_error"]


def _results_from_split(data: Any) -> Any:
    """Accept mnesis 0.4.0's ``successes=``/``failures=`` construction."""
    if isinstance(data, dict) and "results" not in data:
        if "successes" in data or "failures" in data:
            merged = [*data.get("successes", ()), *data.get("failures", ())]
            return {"results": sorted(merged, key=lambda r: getattr(r, "index", 0))}
    return data


class MapResult(BaseModel):
    """The outcome of one LLMMap item; ``input`` is the item it was made from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    input: Any
    output: Any = None
    success: bool
    error: str | None = None
    error_kind: ErrorKind | None = None
    attempts: int = 0
    index: int = 0
    tokens: TokenUsage = Field(default_factory=TokenUsage)


class MapBatch(BaseModel):
    """All results of an LLMMap run, in input order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    results: list[MapResult]

    @model_validator(mode="before")
    @classmethod
    def _from_split(cls, data: Any) -> Any:
        return _results_from_split(data)

    @property
    def total(self) -> int:
        """How many items the run had."""
        return len(self.results)

    @property
    def successes(self) -> list[MapResult]:
        return [r for r in self.results if r.success]

    @property
    def failures(self) -> list[MapResult]:
        return [r for r in self.results if not r.success]

    @property
    def total_attempts(self) -> int:
        return sum(r.attempts for r in self.results)


class AgentMapResult(BaseModel):
    """The outcome of one AgenticMap sub-agent."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    input: Any
    session_id: str | None
    output_text: str = ""
    success: bool
    error: str | None = None
    error_kind: ErrorKind | None = None
    token_usage: TokenUsage = Field(default_factory=TokenUsage)
    intermediate_outputs: list[str] = Field(default_factory=list)
    index: int = 0


class AgentMapBatch(BaseModel):
    """All results of an AgenticMap run, in input order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    results: list[AgentMapResult]

    @model_validator(mode="before")
    @classmethod
    def _from_split(cls, data: Any) -> Any:
        return _results_from_split(data)

    @property
    def total(self) -> int:
        """How many items the run had."""
        return len(self.results)

    @property
    def total_attempts(self) -> int:
        """Sub-agents started: one per item."""
        return len(self.results)

    @property
    def successes(self) -> list[AgentMapResult]:
        return [r for r in self.results if r.success]

    @property
    def failures(self) -> list[AgentMapResult]:
        return [r for r in self.results if not r.success]

    @property
    def total_tokens(self) -> TokenUsage:
        total = TokenUsage()
        for result in self.results:
            total = total + result.token_usage
        return total
