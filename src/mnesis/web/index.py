"""Where each turn of a stored session starts: the index the timeline pages by.

The store numbers turns (one snapshot per completed turn) but keeps no link
from a turn to its messages, so the inspector derives one: a user message
opens a group, and a group that holds a complete assistant reply is the next
turn. Failed attempts (a user message whose replies all failed) belong to the
turn before them. Built once per session state and kept, the index lets a
page of 50 turns of a 20,000-turn session read only those turns' messages.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from mnesis.models.message import MessageStatus
from mnesis.store import Store

_SCAN_CHUNK = 5_000


@dataclass(slots=True)
class SessionIndex:
    """Every stored message's sequence number, time and turn, in order.

    Attributes:
        seqs: Sequence numbers, ascending.
        stamps: Each message's ``created_at`` (Unix ms), never decreasing (a
            clock step back is flattened so the list stays sorted).
        turns: Each message's turn (0: before the first completed turn).
        turn_starts: ``turn_starts[t - 1]`` is the position in ``seqs`` of the
            first message of turn ``t``.
    """

    seqs: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    turn_starts: list[int] = field(default_factory=list)

    @property
    def turn_count(self) -> int:
        """How many completed turns the index found."""
        return len(self.turn_starts)

    def turn_of_seq(self, seq: int) -> int:
        """The turn a message belongs to (0 before the first turn)."""
        at = bisect_right(self.seqs, seq) - 1
        return self.turns[at] if at >= 0 else 0

    def turn_at_time(self, stamp_ms: float) -> int:
        """The turn of the last message stored at or before ``stamp_ms``."""
        at = bisect_right(self.stamps, stamp_ms) - 1
        return self.turns[at] if at >= 0 else 0

    def seq_range(self, first_turn: int, last_turn: int) -> tuple[int, int]:
        """The sequence numbers ``[low, high]`` spanning turns ``first_turn..last_turn``
        (messages before turn 1, and failed attempts, ride with their neighbours)."""
        if not self.seqs:
            return 1, 0
        low_at = 0 if first_turn <= 1 else self.turn_starts[first_turn - 1]
        if last_turn >= self.turn_count:
            high_at = len(self.seqs) - 1
        else:
            high_at = self.turn_starts[last_turn] - 1
        return self.seqs[low_at], self.seqs[high_at]


async def build_index(store: Store, session_id: str) -> SessionIndex:
    """Scan a session's messages once and number its turns."""
    index = SessionIndex()
    group_start = -1  # position of the user message that opened the open group
    group_done = False
    turn = 0
    after = 0
    while True:
        chunk = await store.scan_messages(session_id, after_seq=after, limit=_SCAN_CHUNK)
        for message in chunk:
            meta = message.message
            position = len(index.seqs)
            index.seqs.append(meta.seq)
            index.ids.append(message.id)
            last = index.stamps[-1] if index.stamps else meta.created_at
            index.stamps.append(max(meta.created_at, last))
            if meta.role == "user":
                group_start, group_done = position, False
            elif not group_done and meta.status == MessageStatus.COMPLETE and group_start >= 0:
                group_done = True
                turn += 1
                index.turn_starts.append(group_start)
                for earlier in range(group_start, position):
                    index.turns[earlier] = turn
            index.turns.append(turn)
        if len(chunk) < _SCAN_CHUNK:
            return index
        after = chunk[-1].message.seq
