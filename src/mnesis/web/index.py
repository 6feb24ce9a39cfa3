"""Which turn each stored message belongs to: the index the timeline pages by.

The store numbers turns (one snapshot per completed turn) but keeps no link
from a turn to its messages. Every turn is stored with the complete assistant
reply that ends it (a recorded turn, or one model step of ``send``), in the
same transaction, and nothing else appends a complete assistant message; so
the k-th complete assistant reply ends turn k, and a turn is its reply with
the messages stored since the previous reply (its user message, failed
attempts, ...). Built from the session outline (no part is read), it lets a
page of 50 turns of a 20,000-turn session read only those turns' messages.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from mnesis.store.outline import MessageOutline


@dataclass(slots=True)
class SessionIndex:
    """Every stored message's sequence number and turn, in order.

    Attributes:
        seqs: Sequence numbers, ascending.
        turns: Each message's turn; messages after the last reply belong to
            the turn in progress (``turn_count + 1``).
        replies: ``replies[t - 1]`` is the position in ``seqs`` of the reply
            that ends turn ``t``.
    """

    seqs: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    replies: list[int] = field(default_factory=list)

    @property
    def turn_count(self) -> int:
        """How many turns the log shows (complete assistant replies)."""
        return len(self.replies)

    def turn_of_seq(self, seq: int) -> int:
        """The turn a message belongs to (the one in progress past the last reply)."""
        at = bisect_left(self.seqs, seq)
        if at >= len(self.seqs):
            return self.turn_count + 1
        return self.turns[at]

    def seq_range(self, first_turn: int, last_turn: int) -> tuple[int, int]:
        """The sequence numbers ``[low, high]`` spanning turns ``first_turn..last_turn``;
        past the last turn, the messages of the turn in progress ride along."""
        if not self.seqs:
            return 1, 0
        low_at = 0 if first_turn <= 1 else self.replies[first_turn - 2] + 1
        if last_turn >= self.turn_count:
            high_at = len(self.seqs) - 1
        else:
            high_at = self.replies[last_turn - 1]
        return self.seqs[min(low_at, len(self.seqs) - 1)], self.seqs[high_at]


def build_index(messages: list[MessageOutline]) -> SessionIndex:
    """Number the turns of a session's outlined messages (in sequence order)."""
    index = SessionIndex()
    for position, message in enumerate(messages):
        index.seqs.append(message.seq)
        index.turns.append(len(index.replies) + 1)
        if message.role == "assistant" and message.status == "complete":
            index.replies.append(position)
    return index


def turn_after(turn_times: list[float], stamp: float) -> int:
    """The last turn stored at or before ``stamp`` (Unix seconds; 0: none was)."""
    return bisect_right(turn_times, stamp)
