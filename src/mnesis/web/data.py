"""What the inspector's pages show, read from one open store and shaped as JSON.

Read-only by construction: it calls only the store's reads and recall (grep,
describe, expand), never a session, whose load settles abandoned reply drafts
(a write). A session's first request reads its outline (numbers and times, no
message text: see :mod:`mnesis.store.outline`), from which the turn index, the
chart, the DAG and each past turn's context are derived; message bodies are
read only for the timeline page or the turn shown. The derived state is kept
while the session's row is unchanged.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from mnesis.context.window import ContextWindow
from mnesis.errors import InvalidInputError
from mnesis.llm.limits import resolve_limits, usable_context
from mnesis.models.info import SessionInfo
from mnesis.models.message import MessageWithParts
from mnesis.models.results import TurnSnapshot
from mnesis.recall import Recall
from mnesis.session.opening import stored_config
from mnesis.session.tokens import TokenCounter
from mnesis.store import Store
from mnesis.store.base import SessionOutlines
from mnesis.store.outline import MessageOutline, SessionOutline, ToolOutline
from mnesis.store.records import SummaryRecord
from mnesis.web.index import SessionIndex, build_index, turn_after
from mnesis.web.replay import (
    check,
    entry_at,
    matching_view,
    recorded_sum,
    rendered,
    summary_entry,
    tokens_at,
    tool_at,
    view_before,
)
from mnesis.web.shapes import (
    context_entry_json,
    grep_json,
    message_json,
    session_json,
    snapshot_json,
    summary_json,
)

PAGE_TURNS = 50
CHART_POINTS = 800  # above this many turns the chart shows each bucket's fullest turn
MAX_CUTOFFS = 64  # changes between two turns tried when rebuilding a turn's context
LOOKBACK = 8
EXPORT_TURNS = 20  # an export carries the rebuilt context of this many latest turns


@dataclass(slots=True)
class SessionState:
    """What is derived once per stored state of a session, from its outline."""

    key: tuple[Any, ...]
    info: SessionInfo
    system_prompt: str
    window: dict[str, int]
    outline: SessionOutline
    index: SessionIndex
    snapshots: list[TurnSnapshot]
    turn_times: list[float]  # each turn's append time, never decreasing
    summaries: dict[str, SummaryRecord]
    children: dict[str, list[str]]
    parent: dict[str, str]  # a message's or node's direct covering node
    in_context: list[str]
    pinned: set[str]
    tools: dict[str, list[ToolOutline]]  # a message's tool calls
    positions: dict[str, int]  # a message's place in ``outline.messages``
    _counter: TokenCounter | None = None

    @property
    def counter(self) -> TokenCounter:
        """The session model's token counter, made on first use (loading a tokenizer
        takes a while, and only the context views need it)."""
        if self._counter is None:
            self._counter = TokenCounter(self.info.model)
        return self._counter

    def top_of(self, ref_id: str) -> str | None:
        """The node that covers a message in the context now (the top of its chain)."""
        node = self.parent.get(ref_id)
        while node is not None and node in self.parent:
            node = self.parent[node]
        return node


class Inspector:
    """The pages' data over one open store; every method only reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._states: dict[str, SessionState] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- sessions -----------------------------------------------------------------

    async def sessions(self) -> list[dict[str, Any]]:
        """Every session, newest first, as the sessions page lists them."""
        return [session_json(s) for s in await self.store.list_sessions()]

    async def search(self, query: str, *, per_session: int = 3) -> list[dict[str, Any]]:
        """Matches of ``query`` in every session's history, a few per session."""
        query = _checked_query(query)
        found = []
        for info in await self.store.list_sessions():
            result = await Recall(self.store, info.id).grep(query, limit=per_session)
            if not result.matches:
                continue
            state = await self.state(info.id)
            found.append(
                {
                    "session": session_json(info),
                    "matches": [grep_json(m, state.index) for m in result.matches],
                    "more": result.next_offset is not None,
                }
            )
        return found

    # -- one session ----------------------------------------------------------------

    async def state(self, session_id: str) -> SessionState:
        """The session's derived state, rebuilt only when its stored row changed."""
        (info,) = await self.store.list_sessions(session_id)
        key = (info.updated_at, info.messages, info.summaries, info.turns)
        known = self._states.get(session_id)
        if known is not None and known.key == key:
            return known
        async with self._locks.setdefault(session_id, asyncio.Lock()):
            known = self._states.get(session_id)
            if known is not None and known.key == key:
                return known
            state = await self._read_state(session_id, info, key)
            self._states[session_id] = state
            return state

    async def _read_state(
        self, session_id: str, info: SessionInfo, key: tuple[Any, ...]
    ) -> SessionState:
        if not isinstance(self.store, SessionOutlines):
            raise InvalidInputError("this store cannot outline a session (no session_outline)")
        record = await self.store.get_session(session_id)
        config = stored_config(record.config_json)
        limits = resolve_limits(record.model, config.model_overrides)
        usable = usable_context(limits, config)
        window = {
            "context_limit": limits.context_limit,
            "max_output_tokens": limits.max_output_tokens,
            "usable": usable,
            "soft": int(usable * config.compaction.soft_threshold_fraction),
            "hard": usable,
        }
        outline = await self.store.session_outline(session_id)
        summaries = {s.id: s for s in outline.summaries}
        parent = {ref: node for node, refs in outline.sources.items() for ref in refs}
        children = {
            node: [ref for ref in outline.sources.get(node, ()) if ref in summaries]
            for node in summaries
        }
        tools: dict[str, list[ToolOutline]] = {}
        for tool in outline.tools:
            tools.setdefault(tool.message_id, []).append(tool)
        turn_times: list[float] = []
        for turn in outline.turns:  # a clock step back is flattened so the list stays sorted
            turn_times.append(max(turn.created_at, turn_times[-1] if turn_times else 0.0))
        live = sorted(
            (s for s in outline.summaries if s.id not in parent), key=lambda s: s.first_seq
        )
        return SessionState(
            key=key,
            info=info,
            system_prompt=record.system_prompt,
            window=window,
            outline=outline,
            index=build_index(outline.messages),
            snapshots=[t.snapshot for t in outline.turns],
            turn_times=turn_times,
            summaries=summaries,
            children=children,
            parent=parent,
            in_context=[s.id for s in live],
            pinned=set(outline.pins),
            tools=tools,
            positions={m.id: i for i, m in enumerate(outline.messages)},
        )

    async def overview(self, session_id: str) -> dict[str, Any]:
        """The session page's header: the session, its window and how it pages."""
        state = await self.state(session_id)
        turns = state.index.turn_count
        return {
            "session": session_json(state.info),
            "system_prompt": state.system_prompt,
            "window": state.window,
            "turns": turns,
            "snapshots": len(state.snapshots),
            "page_turns": PAGE_TURNS,
            "pages": max(1, math.ceil(turns / PAGE_TURNS)),
            "summaries": len(state.summaries),
            "pinned": sorted(state.pinned),
        }

    async def chart(self, session_id: str) -> dict[str, Any]:
        """Tokens by kind per turn (bucketed past :data:`CHART_POINTS` turns), the
        thresholds, and a mark for each turn after which compaction ran."""
        state = await self.state(session_id)
        snaps = state.snapshots
        size = max(1, math.ceil(len(snaps) / CHART_POINTS))
        points = []
        for start in range(0, len(snaps), size):
            bucket = snaps[start : start + size]
            fullest = max(bucket, key=lambda s: s.context_tokens.total)
            point = snapshot_json(fullest)
            point["first_turn"] = bucket[0].turn_index
            point["last_turn"] = bucket[-1].turn_index
            point["compaction_triggered"] = any(s.compaction_triggered for s in bucket)
            points.append(point)
        passes: dict[int, dict[str, Any]] = {}
        for node in state.outline.summaries:
            turn = turn_after(state.turn_times, node.created_at)
            mark = passes.setdefault(turn, {"turn": turn, "level": 0, "nodes": []})
            mark["level"] = max(mark["level"], node.level_used)
            mark["nodes"].append(node.id)
        return {
            "window": state.window,
            "bucket": size,
            "turns": len(snaps),
            "points": points,
            "compactions": sorted(passes.values(), key=lambda m: m["turn"]),
        }

    async def timeline(self, session_id: str, page: int) -> dict[str, Any]:
        """One page of turns: their messages, each tagged with its turn, the
        summary that covers it in the context now, and its pinned mark."""
        state = await self.state(session_id)
        pages = max(1, math.ceil(state.index.turn_count / PAGE_TURNS))
        if not 1 <= page <= pages:
            raise InvalidInputError(f"page {page} is out of range (1..{pages})")
        first = (page - 1) * PAGE_TURNS + 1
        last = min(page * PAGE_TURNS, state.index.turn_count)
        low, high = state.index.seq_range(first, last if page < pages else last + 1)
        messages: list[MessageWithParts] = []
        after = low - 1
        while after < high:
            chunk = await self.store.scan_messages(session_id, after_seq=after, limit=500)
            messages += [m for m in chunk if m.message.seq <= high]
            if len(chunk) < 500:
                break
            after = chunk[-1].message.seq
        covered = {m.id: top for m in messages if (top := state.top_of(m.id)) is not None}
        shown = {
            sid: summary_json(state.summaries[sid], state.children.get(sid, []), True)
            for sid in dict.fromkeys(covered.values())
            if sid in state.summaries
        }
        return {
            "page": page,
            "pages": pages,
            "first_turn": first,
            "last_turn": last,
            "messages": [
                message_json(
                    m,
                    turn=state.index.turn_of_seq(m.message.seq),
                    covered_by=covered.get(m.id),
                    pinned=m.id in state.pinned,
                )
                for m in messages
            ],
            "summaries": shown,
        }

    async def page_of_turn(self, session_id: str, turn: int) -> int:
        """The timeline page that shows ``turn``."""
        state = await self.state(session_id)
        if not 0 <= turn <= state.index.turn_count + 1:
            raise InvalidInputError(f"turn {turn} is out of range (1..{state.index.turn_count})")
        pages = max(1, math.ceil(state.index.turn_count / PAGE_TURNS))
        return min(pages, max(1, math.ceil(turn / PAGE_TURNS)))

    async def dag(self, session_id: str) -> dict[str, Any]:
        """Every summary node, its child nodes and whether it is in the context now."""
        state = await self.state(session_id)
        live = set(state.in_context)
        nodes = [
            summary_json(node, state.children.get(node.id, []), node.id in live)
            for node in sorted(state.summaries.values(), key=lambda s: (s.first_seq, -s.depth))
        ]
        for node in nodes:
            del node["text"]  # drawn without it; a click reads describe()
            node["turns"] = [
                state.index.turn_of_seq(node["first_seq"]),
                state.index.turn_of_seq(node["last_seq"]),
            ]
        last_seq = state.index.seqs[-1] if state.index.seqs else 0
        return {"nodes": nodes, "last_seq": last_seq, "in_context": state.in_context}

    async def summary(
        self, session_id: str, summary_id: str, *, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """``describe()`` of a summary node and a page of its originals (``expand()``)."""
        state = await self.state(session_id)
        recall = Recall(self.store, session_id)
        described = await recall.describe(summary_id)
        if described.kind != "summary":
            raise InvalidInputError(f"{summary_id!r} is not a summary node")
        page = await recall.expand(summary_id, offset=offset, limit=limit)
        return {
            "describe": described.model_dump(mode="json"),
            "originals": [
                message_json(
                    m,
                    turn=state.index.turn_of_seq(m.message.seq),
                    covered_by=summary_id,
                    pinned=m.id in state.pinned,
                )
                for m in page.messages
            ],
            "total": page.total,
            "offset": page.offset,
            "next_offset": page.next_offset,
        }

    async def grep(
        self, session_id: str, query: str, *, offset: int = 0, regex: bool = False
    ) -> dict[str, Any]:
        """``grep()`` over the session's whole history, each match with its turn."""
        query = _checked_query(query)
        state = await self.state(session_id)
        result = await Recall(self.store, session_id).grep(
            query, limit=25, offset=offset, regex=regex
        )
        return {
            "pattern": result.pattern,
            "matches": [grep_json(m, state.index) for m in result.matches],
            "next_offset": result.next_offset,
            "complete": result.complete,
        }

    async def context(self, session_id: str) -> dict[str, Any]:
        """Exactly what the model receives next: the context view, rendered as the
        request's messages, with its token breakdown."""
        state = await self.state(session_id)
        _, entries = await self.store.context_entries(session_id)
        window = ContextWindow(entries)
        system_tokens = state.counter.system_prompt_tokens(state.system_prompt)
        return {
            "entries": [context_entry_json(e) for e in entries],
            "messages": window.messages(state.system_prompt or None),
            "breakdown": window.breakdown(system_tokens).model_dump(),
            "window": state.window,
        }

    async def turn(self, session_id: str, turn: int) -> dict[str, Any]:
        """What the store kept of one turn: its snapshot (the context's tokens by
        kind after it) and the compaction it triggered."""
        state = await self.state(session_id)
        if not 1 <= turn <= len(state.snapshots):
            raise InvalidInputError(f"turn {turn} is out of range (1..{len(state.snapshots)})")
        snapshot = state.snapshots[turn - 1]
        passes = [
            node.id
            for node in state.outline.summaries
            if turn_after(state.turn_times, node.created_at) == turn
        ]
        return {
            "turn": turn,
            "snapshot": snapshot_json(snapshot),
            "compaction": snapshot.compact_result.model_dump(mode="json")
            if snapshot.compact_result
            else None,
            "summaries_after": passes,
            "latest": turn == len(state.snapshots),
            "window": state.window,
        }

    async def received(self, session_id: str, turn: int) -> dict[str, Any]:
        """What the model had on ``turn``: the context view rebuilt from the log as it
        was when the turn was stored, rendered as the request's messages, then the
        turn's reply, checked against the tokens recorded for the turn."""
        state = await self.state(session_id)
        if not 1 <= turn <= len(state.snapshots):
            raise InvalidInputError(f"turn {turn} is out of range (1..{len(state.snapshots)})")
        recorded = state.snapshots[turn - 1].context_tokens
        if turn > state.index.turn_count:
            return {
                "turn": turn,
                "rebuilt": False,
                "reason": f"the log holds {state.index.turn_count} complete replies for "
                f"{len(state.snapshots)} recorded turns, so turn {turn} has no reply to "
                "rebuild from (messages were stored without a turn, or imported)",
                "recorded": recorded.model_dump(),
                "window": state.window,
            }
        outline = state.outline
        system_tokens = state.counter.system_prompt_tokens(state.system_prompt)
        views = [
            view_before(
                outline.messages,
                state.index.replies[turn - 1],
                outline.summaries,
                outline.sources,
                cutoff,
                state.turn_times[turn - 1],
            )
            for cutoff in _cutoffs(state, turn)
        ]
        view = matching_view(views, state.tools, system_tokens, recorded.total) or views[0]
        wanted = [i.id for i in view.items if isinstance(i, MessageOutline)] + [view.reply.id]
        bodies = {m.id: m for m in await self.store.get_messages_by_id(session_id, tuple(wanted))}
        entries, items = [], []
        for item in view.items:
            if isinstance(item, SummaryRecord):
                entry = summary_entry(item)
                items.append(rendered(entry, {}, pinned=False))
            else:
                tools = state.tools.get(item.id, [])
                entry = entry_at(bodies[item.id], item, tools, view.cutoff)
                pinned_at = outline.pins.get(item.id)
                items.append(
                    rendered(
                        entry,
                        {t.tool_call_id: tool_at(t, view.cutoff) for t in tools},
                        pinned=pinned_at is not None and pinned_at <= view.cutoff,
                    )
                )
            entries.append(entry)
        reply_tools = state.tools.get(view.reply.id, [])
        reply = entry_at(bodies[view.reply.id], view.reply, reply_tools, view.stored)
        reply_tokens = tokens_at(view.reply, reply_tools, view.stored)
        window = ContextWindow(entries)
        rebuilt = recorded_sum(window, system_tokens, reply_tokens)
        return {
            "turn": turn,
            "rebuilt": True,
            "cutoff": round(view.cutoff * 1000),
            "system": {"content": state.system_prompt, "tokens": system_tokens},
            "items": items,
            "request_messages": len(window.messages(state.system_prompt or None)),
            "reply": rendered(
                reply,
                {t.tool_call_id: tool_at(t, view.stored) for t in reply_tools},
                pinned=False,
            )
            | {"tokens": reply_tokens},
            "summaries": [i.id for i in view.items if isinstance(i, SummaryRecord)],
            "pruned": [
                t.tool_call_id
                for i in view.items
                if isinstance(i, MessageOutline)
                for t in state.tools.get(i.id, [])
                if tool_at(t, view.cutoff) == "pruned"
            ],
            "check": check(rebuilt, recorded),
            "late": [  # made before the turn was stored, yet not in the context it had
                s.id for s in outline.summaries if view.cutoff < s.created_at <= view.stored
            ]
            + [
                t.tool_call_id
                for t in outline.tools
                if t.pruned_at is not None and view.cutoff < t.pruned_at <= view.stored
            ],
            "window": state.window,
        }

    async def export(self, session_id: str) -> dict[str, Any]:
        """Everything the session page shows, for a file that opens without a server
        (the rebuilt context of the last :data:`EXPORT_TURNS` turns only)."""
        overview = await self.overview(session_id)
        pages = [await self.timeline(session_id, p) for p in range(1, overview["pages"] + 1)]
        dag = await self.dag(session_id)
        expansions = {
            node["id"]: await self.summary(session_id, node["id"], limit=10_000_000)
            for node in dag["nodes"]
        }
        state = await self.state(session_id)
        turns = len(state.snapshots)
        return {
            "overview": overview,
            "chart": await self.chart(session_id),
            "pages": pages,
            "dag": dag,
            "summaries": expansions,
            "context": await self.context(session_id),
            "turns": [snapshot_json(s) for s in state.snapshots],
            "received": {
                t: await self.received(session_id, t)
                for t in range(max(1, turns - EXPORT_TURNS + 1), turns + 1)
            },
        }


def _cutoffs(state: SessionState, turn: int) -> list[float]:
    """The times the context of ``turn`` may have been read at, latest first: when
    the turn was stored, then just before each change to the view made since the
    turn before it (a summary, a prune, a tool result): a background compaction
    may commit while a turn runs, after its request was assembled."""
    cutoff = state.turn_times[turn - 1]
    since = state.turn_times[turn - 2 - LOOKBACK] if turn > 1 + LOOKBACK else -math.inf
    times = {s.created_at for s in state.outline.summaries}
    for tool in state.outline.tools:
        times.update(t for t in (tool.pruned_at, tool.completed_at) if t is not None)
    changes = sorted((t for t in times if since < t <= cutoff), reverse=True)
    return [cutoff] + [math.nextafter(t, -math.inf) for t in changes[:MAX_CUTOFFS]]


def _checked_query(query: str) -> str:
    query = query.strip()
    if not query:
        raise InvalidInputError("the search needs some text")
    if len(query) > 500:
        raise InvalidInputError("the search text is longer than 500 characters")
    return query
