"""What a model can take and what it costs, from litellm's bundled model table.

The table is read straight from the JSON file inside the litellm package, so
looking up limits neither imports litellm (slow) nor touches the network.
``model_overrides`` win over the table; unknown models get conservative
defaults and one warning. Every limit is a whole number of tokens within
:data:`MAX_TOKENS`, so the budget arithmetic stays exact.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnesis.errors import ConfigError
from mnesis.models.config import MnesisConfig
from mnesis.models.message import TokenUsage

logger = logging.getLogger("mnesis.llm")

DEFAULT_CONTEXT_LIMIT = 32_768
DEFAULT_MAX_OUTPUT_TOKENS = 4_096
# Far above any model's window (the largest are a few million tokens), far below
# where a float (as in ``usable * fraction``) stops holding every whole number.
MAX_TOKENS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """A model's window, output cap and per-token prices (USD)."""

    model: str
    context_limit: int
    max_output_tokens: int
    known: bool = False
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0
    cache_read_cost_per_token: float = 0.0
    cache_write_cost_per_token: float = 0.0

    def cost(self, usage: TokenUsage) -> float:
        """The price of ``usage`` in USD (0.0 when the table has no prices)."""
        return (
            usage.input * self.input_cost_per_token
            + usage.output * self.output_cost_per_token
            + usage.cache_read * self.cache_read_cost_per_token
            + usage.cache_write * self.cache_write_cost_per_token
        )


@functools.cache
def _model_table() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations)))
    path = path / "model_prices_and_context_window_backup.json"
    try:
        table: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("litellm's model table is unreadable; using default limits")
        return {}
    return table


def _lookup(model: str) -> dict[str, Any] | None:
    table = _model_table()
    parts = model.split("/")
    for start in range(len(parts)):
        entry = table.get("/".join(parts[start:]))
        if isinstance(entry, dict) and (entry.get("max_input_tokens") or entry.get("max_tokens")):
            return entry
    return None


@functools.cache
def _warn_unknown(model: str) -> None:
    warnings.warn(
        f"mnesis: model {model!r} is not in litellm's model table; assuming a "
        f"{DEFAULT_CONTEXT_LIMIT}-token window and {DEFAULT_MAX_OUTPUT_TOKENS} output tokens. "
        "Set MnesisConfig(model_overrides={'context_limit': ..., 'max_output_tokens': ...}).",
        stacklevel=4,
    )


def resolve_limits(model: str, overrides: dict[str, Any] | None = None) -> ModelLimits:
    """Limits of ``model``: the table, then ``overrides``; defaults plus a warning if unknown."""
    overrides = overrides or {}
    entry = _lookup(model)
    if entry is None:
        if "context_limit" not in overrides:
            _warn_unknown(model)
        entry = {}
    context = _whole_tokens(
        "context_limit",
        model,
        overrides.get("context_limit")
        or entry.get("max_input_tokens")
        or entry.get("max_tokens")
        or DEFAULT_CONTEXT_LIMIT,
    )
    output = _whole_tokens(
        "max_output_tokens",
        model,
        overrides.get("max_output_tokens")
        or entry.get("max_output_tokens")
        or entry.get("max_tokens")
        or DEFAULT_MAX_OUTPUT_TOKENS,
    )
    return ModelLimits(
        model=model,
        context_limit=context,
        # Some table entries give the whole window as the output cap; reserving all
        # of it would leave no context, so at most a quarter is reserved unless
        # the caller overrides it.
        max_output_tokens=(
            min(output, context)
            if "max_output_tokens" in overrides
            else min(output, max(context // 4, 1))
        ),
        known=bool(entry),
        input_cost_per_token=float(entry.get("input_cost_per_token") or 0.0),
        output_cost_per_token=float(entry.get("output_cost_per_token") or 0.0),
        cache_read_cost_per_token=float(entry.get("cache_read_input_token_cost") or 0.0),
        cache_write_cost_per_token=float(entry.get("cache_creation_input_token_cost") or 0.0),
    )


def _whole_tokens(name: str, model: str, value: Any) -> int:
    """``value`` as a token count in ``1..MAX_TOKENS``; ``ConfigError`` otherwise.

    Only exact integers pass (a float is taken when it is a whole number), so
    no limit is ever rounded.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_TOKENS:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKENS:
        raise ConfigError(
            f"{name} of {model!r} must be a whole number of tokens between 1 and "
            f"{MAX_TOKENS:,}, got {value!r:.60}"
        )
    return value


def known_input_window(model: str) -> int | None:
    """The input window litellm's table gives ``model``, or None when it does not know it."""
    entry = _lookup(model)  # only entries that give a window
    return None if entry is None else int(entry.get("max_input_tokens") or entry["max_tokens"])


def usable_context(limits: ModelLimits, config: MnesisConfig) -> int:
    """Tokens left for the assembled context; raises ConfigError when none are left."""
    budget = config.compaction.compaction_output_budget
    usable = limits.context_limit - limits.max_output_tokens - budget
    if usable <= 0:
        raise ConfigError(
            f"compaction.compaction_output_budget={budget} leaves no usable context for "
            f"{limits.model!r} (context_limit={limits.context_limit}, "
            f"max_output_tokens={limits.max_output_tokens}); lower the budget or set "
            "model_overrides"
        )
    return usable
