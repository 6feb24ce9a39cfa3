"""A reply's text while it streams, kept so a process that dies mid-turn loses nothing.

A turn that streams for a while saves what the model has written so far as a
draft row (throttled: see :mod:`mnesis.session.drafts`); storing the reply, or
its failure, removes it. A draft whose process is gone is a reply that was
interrupted: the next load of its session stores the text as a failed message.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnesis.store.owners import ProcessOwner, is_abandoned

# From another host only the heartbeat tells whether the writer lives; a model can
# think for minutes between two chunks, so a draft waits this long before it counts
# as abandoned there (on the writer's own host the answer is exact and immediate).
DRAFT_STALE_SECONDS = 900.0


@dataclass(frozen=True, slots=True)
class ReplyDraft:
    """The text of a reply being streamed, and the process streaming it."""

    message_id: str
    session_id: str
    text: str
    owner: ProcessOwner
    created_at: float
    heartbeat_at: float

    def abandoned(self, now: float) -> bool:
        """Whether the process that streamed this reply is gone."""
        return is_abandoned(self.owner, self.heartbeat_at, now, DRAFT_STALE_SECONDS)
