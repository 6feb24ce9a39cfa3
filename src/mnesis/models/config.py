"""Configuration: every knob of mnesis with its default, validated on construction.

Invalid values raise ``pydantic.ValidationError`` (a ``ValueError``) naming the
field. Checks that need the model's limits (is any usable context left?) happen
when a session is created, see :func:`mnesis.llm.limits.usable_context`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ADVANCED = "[Advanced] "


def mnesis_home() -> Path:
    """The per-user folder for the default database and files (``~/.mnesis``)."""
    return Path(os.path.expanduser("~")) / ".mnesis"


def absolute_path(value: Any) -> Any:
    """A filesystem path as an absolute string, ``~`` expanded; URLs and empty
    strings pass unchanged."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value and "://" not in value and value != ":memory:":
        try:
            return str(Path(value).expanduser().resolve())
        except (OSError, ValueError):  # e.g. a NUL byte: the store names the problem
            return value
    return value


class RetryConfig(BaseModel):
    """Retry policy for transient provider errors (rate limit, 5xx, timeout, connection)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=0, ge=0, le=100)
    base_delay: float = Field(default=1.0, ge=0.0)
    max_delay: float = Field(default=60.0, ge=0.0)
    jitter: bool = True

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryConfig:
        if self.max_delay < self.base_delay:
            raise ValueError("retry.max_delay must be >= retry.base_delay")
        return self


class CompactionConfig(BaseModel):
    """When and how the active context is compacted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto: bool = True
    compaction_output_budget: int = Field(
        default=20_000,
        ge=0,
        le=100_000,
        description="Tokens reserved for a summary's output, out of the model's window.",
    )
    prune: bool = True
    prune_protect_tokens: int = Field(
        default=40_000, ge=0, description="The most recent tool-output tokens never pruned."
    )
    prune_minimum_tokens: int = Field(
        default=20_000, ge=0, description="Prune only when at least this much can go."
    )
    prune_protected_tools: tuple[str, ...] = Field(
        default=(), description=_ADVANCED + "Tools whose outputs are never pruned."
    )
    compaction_model: str | None = Field(
        default=None, description="Model for summaries (default: the session's)."
    )
    compaction_prompt: str | None = Field(
        default=None, description=_ADVANCED + "Replaces the built-in level-1 summary prompt."
    )
    level2_enabled: bool = Field(
        default=True, description=_ADVANCED + "Try the aggressive summary before truncation."
    )
    condensation_enabled: bool = Field(
        default=True, description=_ADVANCED + "Merge summaries into higher summary nodes."
    )
    soft_threshold_fraction: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description=_ADVANCED
        + "Fraction of the usable context where background compaction starts.",
    )
    max_compaction_rounds: int = Field(
        default=10, ge=1, description=_ADVANCED + "Summaries one pass may write at most."
    )
    summary_timeout: float = Field(
        default=120.0, gt=0.0, description=_ADVANCED + "Seconds a summary call may take."
    )


class FileConfig(BaseModel):
    """Large-file references."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inline_threshold: int = Field(default=10_000, ge=0)
    storage_dir: str = Field(default_factory=lambda: str(mnesis_home() / "files"))

    @field_validator("storage_dir", mode="before")
    @classmethod
    def _absolute_storage_dir(cls, value: Any) -> Any:
        return absolute_path(value)


class StoreConfig(BaseModel):
    """Where and how sessions are stored.

    ``db_path`` is a file path or a URL (``sqlite:///path`` or
    ``postgresql://user@host/db``, which needs ``mnesis[postgres]``). When it is not set
    explicitly, the ``MNESIS_DB_URL`` environment variable, then
    ``~/.mnesis/sessions.db`` decide.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_path: str = Field(default_factory=lambda: str(mnesis_home() / "sessions.db"))
    url: str | None = None  # same as db_path, spelled as a URL (wins when both are set)
    wal_mode: bool = Field(default=True, description=_ADVANCED + "SQLite write-ahead logging.")
    connection_timeout: float = Field(
        default=30.0, gt=0.0, description=_ADVANCED + "Seconds to wait for a database lock."
    )

    @field_validator("db_path", mode="before")
    @classmethod
    def _absolute_db_path(cls, value: Any) -> Any:
        return absolute_path(value)


class OperatorConfig(BaseModel):
    """Concurrency and retries of the parallel operators."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm_map_concurrency: int = Field(default=16, ge=1)
    agentic_map_concurrency: int = Field(default=4, ge=1)
    max_retries: int = Field(default=3, ge=0)


class SessionConfig(BaseModel):
    """Per-session behaviour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    doom_loop_threshold: int = Field(default=3, ge=2, le=10)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_tool_steps: int = Field(default=10, ge=1)


class RecallConfig(BaseModel):
    """Meaning-based recall: which embedder ``search()`` and its background worker use.

    ``embedder``: ``"auto"`` (the offline default when ``mnesis[semantic]`` is
    installed, else full text only, said once in the log), ``"local"`` (the
    offline default, an error without the extra), ``"none"`` (full text only),
    or a litellm embedding model name (e.g. ``"text-embedding-3-small"``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    embedder: str = Field(default="auto", min_length=1, max_length=200)


class MnesisConfig(BaseModel):
    """All of mnesis's configuration.

    ``model_overrides`` replaces what litellm's model table says about the
    session's model: ``{"context_limit": 8192, "max_output_tokens": 1024}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    compaction: CompactionConfig = Field(default_factory=CompactionConfig)
    file: FileConfig = Field(default_factory=FileConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    operators: OperatorConfig = Field(default_factory=OperatorConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    recall: RecallConfig = Field(default_factory=RecallConfig)
    model_overrides: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _overrides_known(self) -> MnesisConfig:
        allowed = {"context_limit", "max_output_tokens"}
        for key, value in (self.model_overrides or {}).items():
            if key not in allowed:
                raise ValueError(
                    f"model_overrides: unknown key {key!r} (allowed: {sorted(allowed)})"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model_overrides.{key} must be a positive int, got {value!r}")
        return self
