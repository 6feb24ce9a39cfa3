"""Summaries of stored sessions, for listings and dashboards."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from mnesis.models.message import TokenUsage


class SessionInfo(BaseModel):
    """One stored session at a glance."""

    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    agent: str
    parent_id: str | None
    created_at: datetime
    updated_at: datetime
    turns: int
    messages: int
    summaries: int
    tokens: TokenUsage
    cost: float
