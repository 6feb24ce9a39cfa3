"""What the parts of a session share: who it is, where it writes, its budget, its totals.

The facade builds one :class:`SessionCore` and hands it to the turn, the tool
loop, the compaction scheduler and the writer, so each takes one argument
instead of ten and none reaches into another's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnesis.events.bus import EventBus
from mnesis.llm import LLMProvider
from mnesis.llm.limits import ModelLimits
from mnesis.models.config import MnesisConfig
from mnesis.models.message import TokenUsage
from mnesis.session.live_context import LiveContext
from mnesis.session.tokens import TokenCounter
from mnesis.store import AppendOutcome, SessionRecord, Store


@dataclass(slots=True)
class SessionTotals:
    """Tokens and cost of the session's model calls, and its completed turns.

    The store sums every writer's usage in the session's row; these follow the
    row as each append returns it, so turns another process recorded are
    counted as soon as this one writes, at no extra read.
    """

    usage: TokenUsage
    cost: float
    turns: int

    def follow(self, outcome: AppendOutcome) -> None:
        """Take the session's counters as an append left them in the store."""
        counters = outcome.counters
        if counters is not None:
            self.usage, self.cost, self.turns = counters.tokens, counters.cost, counters.turn_count


@dataclass(slots=True, eq=False)
class SessionCore:
    """The state and services every part of one session works with."""

    record: SessionRecord
    store: Store
    config: MnesisConfig
    provider: LLMProvider
    limits: ModelLimits
    usable_tokens: int
    bus: EventBus
    live: LiveContext
    counter: TokenCounter
    totals: SessionTotals

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def model(self) -> str:
        return self.record.model

    def prompt(self, override: str | None = None) -> str:
        """The system prompt of a turn: the override, else the session's."""
        return self.record.system_prompt if override is None else override

    def system_tokens(self) -> int:
        """Tokens of the session's own system prompt."""
        return self.counter.system_prompt_tokens(self.record.system_prompt)

    def context_tokens(self) -> int:
        """Tokens the next request would carry: system prompt plus the live context."""
        return self.system_tokens() + self.live.token_count
