"""Counting tokens once, when a message is built, so nothing is re-tokenised later.

Each part is estimated when its message is created; the counts travel with it
into the store and the context window. A tool result is counted when it is
filled in, and the system prompt's count is cached per prompt text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mnesis.context import render_file_block
from mnesis.models.message import (
    FileRefPart,
    MessagePart,
    MessageStatus,
    Role,
    TextPart,
    TokenUsage,
)
from mnesis.store import NewMessage, NewPart
from mnesis.tokens import MESSAGE_OVERHEAD, TokenEstimator

_PROMPT_CACHE_SIZE = 32


class TokenCounter:
    """Token estimates for one session's model: parts, tool results, system prompts."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.estimator = TokenEstimator(model)
        self._prompt_tokens: dict[str, int] = {}

    def system_prompt_tokens(self, prompt: str) -> int:
        """Tokens of a system prompt with its message framing (0 for no prompt)."""
        if not prompt:
            return 0
        count = self._prompt_tokens.get(prompt)
        if count is None:
            count = self.estimator.estimate(prompt) + MESSAGE_OVERHEAD
            if len(self._prompt_tokens) > _PROMPT_CACHE_SIZE:
                self._prompt_tokens.clear()
            self._prompt_tokens[prompt] = count
        return count

    def tool_result_tokens(self, output: str | None, error: str | None) -> int:
        """Tokens of a tool result as the context renders it (an error as ``Error: ...``)."""
        text = output if output is not None else f"Error: {error}"
        return self.estimator.estimate(text) + MESSAGE_OVERHEAD

    def part_tokens(self, part: MessagePart) -> tuple[int, int]:
        """Tokens of a part's content and of its tool result (0 if it has none)."""
        estimate = self.estimator.estimate
        if isinstance(part, TextPart):
            return estimate(part.text), 0
        if isinstance(part, FileRefPart):
            return estimate(render_file_block(part)), 0
        call = estimate(part.tool_name) + estimate(json.dumps(part.input, default=str)) + 8
        if part.output is None and part.error_message is None:
            return call, 0
        return call, self.tool_result_tokens(part.output, part.error_message)

    def counted_message(
        self,
        message_id: str,
        role: Role,
        parts: Sequence[MessagePart],
        created_at: float,
        *,
        status: MessageStatus = MessageStatus.COMPLETE,
        finish_reason: str | None = None,
        error: str | None = None,
        tokens: TokenUsage | None = None,
        cost: float = 0.0,
    ) -> NewMessage:
        """A message ready to append, every part counted."""
        return NewMessage(
            id=message_id,
            role=role,
            parts=tuple(NewPart(part, *self.part_tokens(part)) for part in parts),
            created_at=created_at,
            model=self.model if role == "assistant" else None,
            status=status,
            finish_reason=finish_reason,
            error=error,
            tokens=tokens or TokenUsage(),
            cost=cost,
        )
