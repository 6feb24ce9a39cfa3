"""The store's invariants, re-derived from plain rows; shared by every backend.

A backend reads its tables into :class:`SessionRows` and calls
:func:`check_session`; the checks themselves know nothing of SQL.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(slots=True)
class SessionRows:
    """Everything the checks need about one session."""

    session_id: str
    messages: list[tuple[str, int, str]]  # (id, seq, status) ordered by seq
    context: list[tuple[str, str]]  # (kind, ref_id) ordered by position
    summaries: dict[str, tuple[str, int, int, int]]  # id -> (kind, first_seq, last_seq, count)
    sources: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id -> [(kind, id)]
    pins: set[str] = field(default_factory=set)
    turn_count: int = 0
    snapshots: int = 0
    token_mismatches: list[str] = field(default_factory=list)


def check_session(rows: SessionRows) -> list[str]:
    """Problems with one session (``[]`` when healthy).

    - sequence numbers are 1..n;
    - every complete message is reachable from the active context through
      exactly one chain of summary nodes; failed messages never are;
    - expanding the context in order yields messages in increasing sequence
      (every summary's span is contiguous and in place);
    - every summary node is reachable exactly once (no orphans), leaves cover
      messages, condensed nodes cover summaries, and recorded spans match;
    - pins name messages that are verbatim in the context.
    """
    sid = rows.session_id
    problems = [f"{sid}: {m}" for m in rows.token_mismatches]
    seqs = [seq for _, seq, _ in rows.messages]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"{sid}: message sequence has gaps or duplicates")
    seq_of = {mid: seq for mid, seq, _ in rows.messages}
    status_of = {mid: status for mid, _, status in rows.messages}

    reached: dict[str, int] = {}
    summaries_reached: dict[str, int] = {}
    order: list[int] = []

    def expand(kind: str, ref: str, depth: int) -> list[int]:
        if kind == "message":
            if ref not in seq_of:
                problems.append(f"{sid}: the context refers to unknown message {ref}")
                return []
            reached[ref] = reached.get(ref, 0) + 1
            return [seq_of[ref]]
        if ref not in rows.summaries:
            problems.append(f"{sid}: the context refers to unknown summary {ref}")
            return []
        if depth > len(rows.summaries):
            problems.append(f"{sid}: summary {ref} is part of a cycle")
            return []
        summaries_reached[ref] = summaries_reached.get(ref, 0) + 1
        node_kind, first, last, count = rows.summaries[ref]
        covered: list[int] = []
        for source_kind, source_id in rows.sources.get(ref, []):
            expected = "message" if node_kind == "leaf" else "summary"
            if source_kind != expected:
                problems.append(f"{sid}: {node_kind} summary {ref} covers a {source_kind}")
            covered += expand(source_kind, source_id, depth + 1)
        if not covered:
            problems.append(f"{sid}: summary {ref} covers nothing")
        elif (min(covered), max(covered), len(covered)) != (first, last, count):
            problems.append(
                f"{sid}: summary {ref} records span {first}-{last} ({count} messages) but covers "
                f"{min(covered)}-{max(covered)} ({len(covered)})"
            )
        return covered

    for kind, ref in rows.context:
        order += expand(kind, ref, 0)
    if any(b <= a for a, b in itertools.pairwise(order)):
        problems.append(f"{sid}: the context is out of order (a summary span is not contiguous)")
    for mid, _, status in rows.messages:
        count = reached.get(mid, 0)
        if status == "complete" and count != 1:
            problems.append(f"{sid}: complete message {mid} is reachable {count} times, not once")
        if status != "complete" and count:
            problems.append(f"{sid}: {status} message {mid} is in the context")
    for summary_id in rows.summaries:
        count = summaries_reached.get(summary_id, 0)
        if count != 1:
            problems.append(f"{sid}: summary {summary_id} is reachable {count} times, not once")
    verbatim = {ref for kind, ref in rows.context if kind == "message"}
    for pinned in rows.pins - verbatim:
        problems.append(f"{sid}: pinned message {pinned} is not verbatim in the context")
    if any(status_of.get(p) != "complete" for p in rows.pins):
        problems.append(f"{sid}: a pin names a message that is not complete")
    if rows.turn_count != rows.snapshots:
        problems.append(f"{sid}: turn_count {rows.turn_count} != {rows.snapshots} snapshots")
    return problems
