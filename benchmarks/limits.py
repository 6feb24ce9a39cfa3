#!/usr/bin/env python3
"""mnesis against the store's own limit and against its peers, ratios from one run.

Each section prints a table with the measured value, the target and whether
it is met. Ratios come from runs alternated within this process (the machine
is noisy: only the same-run ratios mean much).

- ``sqlite``: ``record()`` turns/s against raw ``sqlite3`` writing the same rows
  in the same schema, one transaction per turn (WAL, ``synchronous=NORMAL``).
- ``pg``: ``record()`` on PostgreSQL against raw asyncpg, the same statements
  one by one in a transaction, and the whole turn in one round trip.
- ``peers``: the same turns stored by the OpenAI Agents SDK's ``SQLiteSession``
  and by LangGraph's SQLite checkpointer; write per turn and read back.
- ``send``: ``send()`` with the mock model at turn 10 and turn N.
- ``load``: ``load()`` + ``context_for_next_turn()`` of a small and a big session.
- ``stream``: what the engine adds between the provider's chunk and the
  caller's ``TextDelta``.
- ``many``: 1, 8 and 64 sessions sending at once in one event loop.
- ``rss``: resident memory of a process holding the big session, and 64 sessions.
- ``grep``: a common word over a large history (p50, p99).

Usage::

    python benchmarks/limits.py                 # every section, default sizes
    python benchmarks/limits.py --quick         # a few seconds per section
    python benchmarks/limits.py --only sqlite,pg --json
    python benchmarks/limits.py --only grep --grep-size 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import _peers
from overhead import MODEL, words
from recall import VOCAB as GREP_VOCAB
from recall import fill as grep_fill

from mnesis import (
    MnesisConfig,
    MnesisSession,
    MockProvider,
    MockReply,
    StoreConfig,
    TextDelta,
    TokenUsage,
)
from mnesis.llm.base import LLMRequest, StreamChunk
from mnesis.store import SessionRecord, SQLiteStore

T = TypeVar("T")
SECTIONS = ("sqlite", "pg", "peers", "send", "load", "stream", "many", "rss", "grep")
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432"
USAGE = TokenUsage(input=10, output=10)
# No compaction (this measures storage and assembly), and a window wide enough
# for 10,000 turns of 150-word messages.
CONFIG = MnesisConfig.model_validate(
    {"compaction": {"auto": False}, "model_overrides": {"context_limit": 50_000_000}}
)
# A session as it would run: compaction on (mock summariser), the model's own window.
COMPACTING = MnesisConfig.model_validate({"compaction": {"auto": True}})
REPLY = MockReply(text=words(random.Random(8)), usage=TokenUsage(input=1000, output=200))


# -- results ----------------------------------------------------------------------


@dataclass
class Row:
    """One measured value, with its target when it has one."""

    measure: str
    value: float
    unit: str  # "turns/s", "ms", "x", "MiB", "ratio", "count"
    target: str = ""
    met: bool | None = None


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(
        self, measure: str, value: float, unit: str, target: str = "", met: bool | None = None
    ) -> None:
        self.rows.append(Row(measure, value, unit, target, met))


def fmt(value: float, unit: str) -> str:
    if unit == "turns/s":
        return f"{value:,.0f} turns/s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:,.2f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ratio":
        return f"{value:.2f} ({value * 100:.0f}%)"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:g} {unit}"


def render(section: Section) -> str:
    header = ("measure", "value", "target", "met?")
    body = [
        (
            row.measure,
            fmt(row.value, row.unit),
            row.target,
            "" if row.met is None else ("yes" if row.met else "NO"),
        )
        for row in section.rows
    ]
    lines = [f"## {section.title}", ""]
    if not body:
        return "\n".join(lines + section.notes)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    lines += [f"- {note}" for note in section.notes]
    return "\n".join(lines)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def ms(seconds: float) -> float:
    return seconds * 1000


def make_turns(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` turns of 150-word user and assistant messages."""
    rng = random.Random(seed)
    return [(words(rng), words(rng)) for _ in range(count)]


async def alternate(
    reps: int, contenders: dict[str, Callable[[int], Awaitable[T]]]
) -> dict[str, list[T]]:
    """Run every contender ``reps`` times, rotating the order each round."""
    names = list(contenders)
    out: dict[str, list[T]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(await contenders[name](rep))
    return out


@dataclass
class Context:
    """Options and what sections share (the scratch folder, built sessions)."""

    args: argparse.Namespace
    folder: Path
    built: dict[int, tuple[Path, str]] = field(default_factory=dict)

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}-{secrets.token_hex(3)}.db"


def remove_db(path: Path) -> None:
    """Delete a SQLite database and its WAL files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def build_session(
    path: Path, turns: int, *, seed: int = 7, config: MnesisConfig = CONFIG
) -> str:
    """A session of ``turns`` record()ed turns on ``path``; its id."""
    rng = random.Random(seed)
    session = await MnesisSession.create(
        model=MODEL, config=config, db_path=str(path), provider=MockProvider()
    )
    try:
        for _ in range(turns):
            await session.record(words(rng), words(rng), tokens=USAGE)
        await session.wait_for_compaction()
        return session.id
    finally:
        await session.close()


async def big_session(ctx: Context, turns: int, *, compacting: bool = False) -> tuple[Path, str]:
    """A ``turns``-turn session, built once per run and shared by sections."""
    key = (turns, compacting)
    if key not in ctx.built:
        path = ctx.path(f"built{turns}{'c' if compacting else ''}")
        how = "compacting " if compacting else ""
        print(f"  building a {how}{turns:,}-turn session with record() ...", file=sys.stderr)
        began = time.perf_counter()
        config = COMPACTING if compacting else CONFIG
        ctx.built[key] = (path, await build_session(path, turns, config=config))
        print(f"  built in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return ctx.built[key]


# -- sqlite: record() against raw sqlite3 -----------------------------------------------

_MESSAGE = (
    "INSERT INTO messages (id, session_id, seq, role, created_at, model, status, "
    "finish_reason, error, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, total_tokens, cost, token_count) "
    "VALUES (?, ?, ?, ?, ?, ?, 'complete', ?, NULL, ?, ?, 0, 0, ?, ?, ?)"
)
_PART = (
    "INSERT INTO parts (message_id, session_id, idx, type, data, token_count, tool_call_id, "
    "tool_status, tool_output, tool_error, result_token_count, completed_at) "
    "VALUES (?, ?, 0, 'text', ?, ?, NULL, NULL, NULL, NULL, 0, NULL)"
)
_CONTEXT = (
    "INSERT INTO context_items (session_id, position, kind, ref_id) VALUES (?, ?, 'message', ?)"
)
_COUNTERS = (
    "UPDATE sessions SET updated_at = ?, input_tokens = input_tokens + ?, "
    "output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + 0, "
    "cache_write_tokens = cache_write_tokens + 0, total_tokens = total_tokens + ?, "
    "cost = cost + ?, turn_count = turn_count + 1, context_version = context_version + 1 "
    "WHERE id = ?"
)
_TURN = "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) VALUES (?, ?, ?, ?)"


def snapshot_json(turn_index: int) -> str:
    """A turn snapshot the size of the one mnesis stores."""
    return json.dumps(
        {
            "turn_index": turn_index,
            "role": "assistant",
            "context_tokens": {
                "system_prompt": 10,
                "summary": 0,
                "messages": 400 * turn_index,
                "tool_outputs": 0,
                "total": 400 * turn_index + 10,
            },
            "compaction_triggered": False,
            "compact_result": None,
        },
        separators=(",", ":"),
    )


def part_json(text: str) -> str:
    return json.dumps({"text": text, "type": "text"}, separators=(",", ":"))


def message_values(mid: str, session_id: str, seq: int, role: str, now: float) -> tuple[Any, ...]:
    """A message row as mnesis writes it (both raw writers insert these columns)."""
    mine = role == "assistant"
    return (
        mid,
        session_id,
        seq,
        role,
        now,
        MODEL if mine else None,
        "stop" if mine else None,
        10 if mine else 0,
        10 if mine else 0,
        20 if mine else 0,
        0.0003 if mine else 0.0,
        200,
    )


def raw_sqlite(path: Path, session_id: str, turns: Sequence[tuple[str, str]]) -> float:
    """Turns/s writing mnesis's rows for each turn with plain ``sqlite3``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")  # mnesis checks them too
    seq = 0
    began = time.perf_counter()
    for n, (user, assistant) in enumerate(turns, 1):
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        for role, text in (("user", user), ("assistant", assistant)):
            seq += 1
            mid = f"msg_{n:08d}_{role[0]}"
            conn.execute(_MESSAGE, message_values(mid, session_id, seq, role, now))
            part_id = conn.execute(_PART, (mid, session_id, part_json(text), 200)).lastrowid
            assert part_id is not None
            conn.execute(
                "INSERT INTO search_index (rowid, sid, body) VALUES (?, ?, ?)",
                (part_id * 2, session_id, text),
            )
        conn.execute(_CONTEXT, (session_id, seq - 1, f"msg_{n:08d}_u"))
        conn.execute(_CONTEXT, (session_id, seq, f"msg_{n:08d}_a"))
        conn.execute(_COUNTERS, (now, 10, 10, 20, 0.0003, session_id))
        conn.execute(_TURN, (session_id, n, snapshot_json(n), now))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return len(turns) / elapsed


async def ours_record(
    turns: Sequence[tuple[str, str]], *, db_path: str | None = None, url: str | None = None
) -> float:
    """Turns/s of ``record()`` on a new session (the session's creation not timed)."""
    config = CONFIG
    if url is not None:
        config = CONFIG.model_copy(update={"store": StoreConfig(url=url)})
    session = await MnesisSession.create(model=MODEL, config=config, db_path=db_path)
    try:
        began = time.perf_counter()
        for user, assistant in turns:
            await session.record(user, assistant, tokens=USAGE)
        return len(turns) / (time.perf_counter() - began)
    finally:
        await session.close()


async def new_session_id(db_path: str | None = None, url: str | None = None) -> str:
    """Create (and migrate) a database with mnesis and one empty session in it."""
    config = CONFIG
    if url is not None:
        config = CONFIG.model_copy(update={"store": StoreConfig(url=url)})
    session = await MnesisSession.create(model=MODEL, config=config, db_path=db_path)
    await session.close()
    return session.id


async def section_sqlite(ctx: Context) -> Section:
    a = ctx.args
    turns = make_turns(a.turns)

    async def raw(_: int) -> float:
        path = ctx.path("raw")
        session_id = await new_session_id(str(path))
        return raw_sqlite(path, session_id, turns)

    async def ours(_: int) -> float:
        return await ours_record(turns, db_path=str(ctx.path("ours")))

    runs = await alternate(a.reps, {"raw": raw, "ours": ours})
    raw_med, ours_med = statistics.median(runs["raw"]), statistics.median(runs["ours"])
    pairs = [o / r for o, r in zip(runs["ours"], runs["raw"], strict=True)]
    s = Section("sqlite", f"SQLite: record() vs raw sqlite3, {a.turns:,} turns × {a.reps} runs")
    s.add("raw sqlite3, one transaction per turn", raw_med, "turns/s")
    s.add("mnesis record()", ours_med, "turns/s")
    ratio = ours_med / raw_med
    s.add("mnesis / raw (medians)", ratio, "ratio", "≥ 0.50", ratio >= 0.5)
    s.notes.append(
        f"runs alternated; raw {', '.join(f'{v:,.0f}' for v in runs['raw'])}; "
        f"mnesis {', '.join(f'{v:,.0f}' for v in runs['ours'])}; "
        f"per-pair ratios {min(pairs):.2f}–{max(pairs):.2f}"
    )
    s.notes.append(
        "raw: BEGIN IMMEDIATE; per message INSERT messages, parts, search_index (FTS5); "
        "2 INSERT context_items; UPDATE sessions; INSERT turns; COMMIT. WAL, "
        "synchronous=NORMAL, foreign_keys=ON, parameterised; 150-word messages"
    )
    s.data = {"runs": runs}
    return s


# -- pg: record() against raw asyncpg ------------------------------------------------------

_PG_MESSAGE = (
    "INSERT INTO messages (id, session_id, seq, role, created_at, model, status, "
    "finish_reason, error, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, total_tokens, cost, token_count) "
    "VALUES ($1, $2, $3, $4, $5, $6, 'complete', $7, NULL, $8, $9, 0, 0, $10, $11, $12)"
)
_PG_PART = (
    "INSERT INTO parts (message_id, session_id, idx, type, data, token_count, "
    "result_token_count) VALUES ($1, $2, 0, 'text', $3, $4, 0) RETURNING id"
)
_PG_INDEX = (
    "INSERT INTO search_index (key, chunk, session_id, tsv) "
    "VALUES ($1, 0, $2, to_tsvector('simple', $3))"
)
_PG_CONTEXT = (
    "INSERT INTO context_items (session_id, position, kind, ref_id) "
    "VALUES ($1, $2, 'message', $3), ($1, $4, 'message', $5)"
)
_PG_COUNTERS = (
    "UPDATE sessions SET updated_at = $1, input_tokens = input_tokens + 10, "
    "output_tokens = output_tokens + 10, total_tokens = total_tokens + 20, "
    "cost = cost + 0.0003, turn_count = turn_count + 1, "
    "context_version = context_version + 1 WHERE id = $2"
)
_PG_TURN = (
    "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) VALUES ($1, $2, $3, $4)"
)
# The whole turn as one statement: one round trip, atomic on its own.
_PG_ONE_TRIP = """
WITH m AS (
    INSERT INTO messages (id, session_id, seq, role, created_at, model, status, finish_reason,
        error, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens,
        cost, token_count)
    VALUES ($2, $1, $4, 'user', $6, NULL, 'complete', NULL, NULL, 0, 0, 0, 0, 0, 0, 200),
           ($3, $1, $4 + 1, 'assistant', $6, $7, 'complete', 'stop', NULL, 10, 10, 0, 0, 20,
            0.0003, 200)
), p AS (
    INSERT INTO parts (message_id, session_id, idx, type, data, token_count, result_token_count)
    VALUES ($2, $1, 0, 'text', $8, 200, 0), ($3, $1, 0, 'text', $9, 200, 0)
    RETURNING id, message_id
), s AS (
    INSERT INTO search_index (key, chunk, session_id, tsv)
    SELECT p.id * 2, 0, $1,
           to_tsvector('simple', CASE WHEN p.message_id = $2 THEN $10 ELSE $11 END)
    FROM p
), c AS (
    INSERT INTO context_items (session_id, position, kind, ref_id)
    VALUES ($1, $5, 'message', $2), ($1, $5 + 1, 'message', $3)
), u AS (
    UPDATE sessions SET updated_at = $6, input_tokens = input_tokens + 10,
        output_tokens = output_tokens + 10, total_tokens = total_tokens + 20,
        cost = cost + 0.0003, turn_count = turn_count + 1,
        context_version = context_version + 1
    WHERE id = $1
)
INSERT INTO turns (session_id, turn_index, snapshot_json, created_at)
VALUES ($1, $12, $13, $6)
"""


async def raw_pg(url: str, session_id: str, turns: Sequence[tuple[str, str]], one: bool) -> float:
    """Turns/s writing mnesis's rows with asyncpg: statement by statement in a
    transaction, or (``one``) the whole turn as one statement."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        seq = 0
        began = time.perf_counter()
        for n, (user, assistant) in enumerate(turns, 1):
            now = time.time()
            ids = (f"msg_{n:08d}_u", f"msg_{n:08d}_a")
            if one:
                await conn.execute(
                    _PG_ONE_TRIP,
                    session_id,
                    ids[0],
                    ids[1],
                    seq + 1,
                    seq + 1,
                    now,
                    MODEL,
                    part_json(user),
                    part_json(assistant),
                    user,
                    assistant,
                    n,
                    snapshot_json(n),
                )
                seq += 2
                continue
            async with conn.transaction():
                for mid, role, text in ((ids[0], "user", user), (ids[1], "assistant", assistant)):
                    seq += 1
                    await conn.execute(
                        _PG_MESSAGE, *message_values(mid, session_id, seq, role, now)
                    )
                    part_id = await conn.fetchval(_PG_PART, mid, session_id, part_json(text), 200)
                    await conn.execute(_PG_INDEX, part_id * 2, session_id, text)
                await conn.execute(_PG_CONTEXT, session_id, seq - 1, ids[0], seq, ids[1])
                await conn.execute(_PG_COUNTERS, now, session_id)
                await conn.execute(_PG_TURN, session_id, n, snapshot_json(n), now)
        elapsed = time.perf_counter() - began
        rows = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE session_id = $1", session_id
        )
        assert rows == 2 * len(turns), rows
        return len(turns) / elapsed
    finally:
        await conn.close()


@dataclass
class ScratchDatabases:
    """PostgreSQL databases created for the run, dropped at its end."""

    server: str
    names: list[str] = field(default_factory=list)

    async def new(self) -> str:
        import asyncpg

        name = "mnesis_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(f"{self.server}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.names.append(name)
        return f"{self.server}/{name}"

    async def drop_all(self) -> None:
        import asyncpg

        admin = await asyncpg.connect(f"{self.server}/postgres")
        try:
            for name in self.names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def pg_unavailable(server: str) -> str | None:
    """Why the PostgreSQL section cannot run, or ``None``."""
    try:
        import asyncpg
    except ImportError:
        return 'asyncpg is not installed (pip install -e ".[postgres]")'
    try:
        conn = await asyncpg.connect(f"{server}/postgres", timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"no PostgreSQL server at {server} ({type(exc).__name__}: {exc})"
    await conn.close()
    return None


async def section_pg(ctx: Context) -> Section:
    a = ctx.args
    turns = make_turns(a.pg_turns)
    dbs = ScratchDatabases(a.pg)
    s = Section(
        "pg",
        f"PostgreSQL: record() vs raw asyncpg, {a.pg_turns:,} turns × {a.reps} runs",
    )
    unavailable = await pg_unavailable(a.pg)
    if unavailable:
        s.notes.append(f"SKIPPED: {unavailable}")
        return s
    try:

        def raw(one: bool) -> Callable[[int], Awaitable[float]]:
            async def run(_: int) -> float:
                url = await dbs.new()
                return await raw_pg(url, await new_session_id(url=url), turns, one)

            return run

        async def ours(_: int) -> float:
            url = await dbs.new()
            await new_session_id(url=url)  # migrated before timing, as for the raw runs
            return await ours_record(turns, url=url)

        runs = await alternate(
            a.reps,
            {"raw, statements": raw(False), "raw, one round trip": raw(True), "mnesis": ours},
        )
    finally:
        await dbs.drop_all()
    med = {name: statistics.median(values) for name, values in runs.items()}
    s.add("raw asyncpg, statement by statement in a transaction", med["raw, statements"], "turns/s")
    s.add("raw asyncpg, whole turn in one round trip", med["raw, one round trip"], "turns/s")
    s.add("mnesis record()", med["mnesis"], "turns/s")
    sep = med["mnesis"] / med["raw, statements"]
    one = med["mnesis"] / med["raw, one round trip"]
    s.add("mnesis / raw statement by statement", sep, "ratio")
    s.add("mnesis / raw one round trip", one, "ratio", "≥ 0.50", one >= 0.5)
    s.notes.append(
        "runs alternated, each on a fresh database migrated by mnesis; "
        + "; ".join(f"{k} {', '.join(f'{v:,.0f}' for v in vs)}" for k, vs in runs.items())
    )
    s.notes.append(
        "raw statements: BEGIN; per message INSERT messages, parts RETURNING id, search_index "
        "(to_tsvector on the server); INSERT context_items (2 rows); UPDATE sessions; "
        "INSERT turns; COMMIT (11 round trips). One round trip: the same rows as one "
        "statement of writable CTEs"
    )
    s.data = {"runs": runs}
    return s


# -- peers ------------------------------------------------------------------------------


async def mnesis_peer_run(path: Path, turns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    session = await MnesisSession.create(model=MODEL, config=CONFIG, db_path=str(path))
    times = []
    try:
        for user, assistant in turns:
            began = time.perf_counter()
            await session.record(user, assistant, tokens=USAGE)
            times.append(time.perf_counter() - began)
    finally:
        await session.close()
    began = time.perf_counter()
    loaded = await MnesisSession.load(session.id, config=CONFIG, db_path=str(path))
    try:
        history = await loaded.messages()
        read = time.perf_counter() - began
    finally:
        await loaded.close()
    began = time.perf_counter()
    loaded = await MnesisSession.load(session.id, config=CONFIG, db_path=str(path))
    try:
        context = await loaded.context_for_next_turn()
        read_context = time.perf_counter() - began
    finally:
        await loaded.close()
    assert len(history) == len(context) == 2 * len(turns)
    return {"write": times, "read": read, "read_context": read_context}


async def section_peers(ctx: Context) -> Section:
    a = ctx.args
    s = Section(
        "peers", f"Peers on SQLite: {a.peer_turns:,} turns of 150-word messages × {a.reps} runs"
    )
    absent = _peers.missing()
    if absent:
        s.notes.append(
            f"SKIPPED: peer packages not installed ({', '.join(absent)}); "
            f"install with: {_peers.INSTALL_HINT}"
        )
        return s
    turns = make_turns(a.peer_turns)

    def peer(
        run: Callable[..., Awaitable[_peers.PeerRun]], normal: bool
    ) -> Callable[[int], Awaitable[dict[str, Any]]]:
        async def go(_: int) -> dict[str, Any]:
            path = ctx.path("peer")
            result = await run(path, turns, synchronous_normal=normal)
            remove_db(path)  # LangGraph's files grow with the square of the turns
            return {"write": result.write_s, "read": result.read_s}

        return go

    async def ours(_: int) -> dict[str, Any]:
        path = ctx.path("mnesis")
        result = await mnesis_peer_run(path, turns)
        remove_db(path)
        return result

    contenders: dict[str, Callable[[int], Awaitable[dict[str, Any]]]] = {
        "mnesis": ours,
        "Agents SDK (FULL)": peer(_peers.openai_agents, False),
        "Agents SDK (NORMAL)": peer(_peers.openai_agents, True),
        "LangGraph (FULL)": peer(_peers.langgraph, False),
        "LangGraph (NORMAL)": peer(_peers.langgraph, True),
    }
    results = await alternate(a.reps, contenders)
    names = list(contenders)

    def per_turn(name: str) -> float:
        return statistics.median(ms(statistics.fmean(r["write"])) for r in results[name])

    def last_turns(name: str) -> float:
        return statistics.median(ms(statistics.median(r["write"][-10:])) for r in results[name])

    def read(name: str, key: str = "read") -> float:
        return statistics.median(ms(r[key]) for r in results[name])

    ours_turn = per_turn("mnesis")
    n = a.peer_turns
    for name in names:
        s.add(f"{name}: write per turn (mean of {n})", per_turn(name), "ms")
    for name in names:
        s.add(f"{name}: write at turn {n} (median of the last 10)", last_turns(name), "ms")
    for name in names:
        s.add(f"{name}: reopen + read all {2 * n} messages", read(name), "ms")
    s.add("mnesis: load() + context_for_next_turn()", read("mnesis", "read_context"), "ms")
    for name in names[1:]:
        ratio = per_turn(name) / ours_turn
        s.add(f"{name}: write per turn / mnesis's", ratio, "x", "> 1", ratio > 1)
    for name in names[1:]:
        s.add(f"{name}: read / mnesis's", read(name) / read("mnesis"), "x")
    s.notes.append(
        "Agents SDK: agents.memory.SQLiteSession, add_items([user, assistant]) per turn, "
        "get_items() from a new session object. LangGraph: a one-node StateGraph "
        "(messages + add_messages) with AsyncSqliteSaver, ainvoke() per turn, aget_state() "
        "from a new connection. mnesis: record() per turn, load() + messages()"
    )
    s.notes.append(
        "FULL: the peer as shipped (WAL, SQLite's default synchronous=FULL); NORMAL: the peer's "
        "connections set to synchronous=NORMAL, mnesis's setting. Runs alternated"
    )
    s.notes.append("versions: " + ", ".join(f"{k} {v}" for k, v in _peers.versions().items()))
    s.notes.append(
        "mnesis also writes the full-text index, the context view and a turn snapshot per turn; "
        "the Agents SDK writes one JSON row per message; LangGraph writes checkpoints of the "
        "whole message list (its write time grows with the history)"
    )
    s.data = {
        name: [
            {"write_ms_mean": ms(statistics.fmean(r["write"])), "read_ms": ms(r["read"])}
            for r in rs
        ]
        for name, rs in results.items()
    }
    return s


# -- send(): engine overhead with the mock model ------------------------------------------


async def section_send(ctx: Context) -> Section:
    a = ctx.args
    n = a.send_turns
    rng = random.Random(7)
    provider = MockProvider(lambda request: REPLY)
    times = []
    async with MnesisSession.open(
        model=MODEL, config=CONFIG, db_path=str(ctx.path("send")), provider=provider
    ) as session:
        for _ in range(n):
            text = words(rng)
            began = time.perf_counter()
            await session.send(text)
            times.append(time.perf_counter() - began)
    s = Section("send", f"send() per turn with the mock model, one session of {n:,} turns")
    at10 = ms(statistics.median(times[7:12]))
    at_n = ms(statistics.median(times[-5:]))
    s.add("send() at turn 10 (median of turns 8–12)", at10, "ms", "≤ 0.25 ms", at10 <= 0.25)
    s.add(f"send() at turn {n:,} (median of the last 5)", at_n, "ms", "≤ 0.25 ms", at_n <= 0.25)
    s.add(f"send() p99 over all {n:,} turns", ms(percentile(times, 0.99)), "ms")
    s.add(f"send() turn {n:,} / turn 10", at_n / at10, "x")
    s.notes.append(
        "wall time of send(): the mock model streams a fixed 150-word reply in 4 chunks with "
        "fixed usage; everything else is the engine (append, assemble, stream, persist)"
    )
    return s


# -- load() + context_for_next_turn() --------------------------------------------------------


async def load_times(
    path: Path, session_id: str, reps: int, config: MnesisConfig = CONFIG
) -> tuple[float, float]:
    """Median ms of ``load()`` and of ``load()`` + ``context_for_next_turn()``."""
    load_ms, both_ms = [], []
    for _ in range(reps):
        began = time.perf_counter()
        session = await MnesisSession.load(session_id, config=config, db_path=str(path))
        loaded = time.perf_counter()
        await session.context_for_next_turn()
        done = time.perf_counter()
        await session.close()
        load_ms.append(ms(loaded - began))
        both_ms.append(ms(done - began))
    return statistics.median(load_ms), statistics.median(both_ms)


async def section_load(ctx: Context) -> Section:
    a = ctx.args
    s = Section("load", "load() + context_for_next_turn() (median of 5, in this process)")
    for turns, sized, limit, op, compacting in (
        (a.small, 1_000, 5.0, "≤", False),
        (a.big, 100_000, 0.0, "", False),
        (a.big, 100_000, 50.0, "<", True),
    ):
        path, session_id = await big_session(ctx, turns, compacting=compacting)
        config = COMPACTING if compacting else CONFIG
        load, both = await load_times(path, session_id, 5, config)
        name = f"{turns:,} turns" + (", compacting" if compacting else ", no compaction")
        s.add(f"load(), {name}", load, "ms")
        if not op:  # the whole history is the context: no target can apply
            s.add(f"load() + context_for_next_turn(), {name}", both, "ms")
            continue
        met = both <= limit if op == "≤" else both < limit
        target = f"{op} {limit:g} ms" + ("" if turns == sized else f" (at {sized:,})")
        s.add(f"load() + context_for_next_turn(), {name}", both, "ms", target, met)
    s.notes.append(
        "no compaction: the context is the whole history (200,000 messages at 100,000 turns), "
        "so the cost is the context's; compacting: mock summariser, the model's own window"
    )
    s.notes.append(
        "the first load of a process (cold imports, a new connection) is in the rss section"
    )
    return s


# -- stream(): added latency per chunk ------------------------------------------------------


class StampingProvider:
    """A provider yielding ``chunks`` text chunks ``gap`` seconds apart, each
    stamped with ``time.perf_counter()`` at the moment it is yielded."""

    def __init__(self, chunks: int, gap: float) -> None:
        self.chunks = chunks
        self.gap = gap
        self.stamps: dict[str, float] = {}
        self.calls = 0

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        for i in range(self.chunks):
            await asyncio.sleep(self.gap)
            text = f"t{self.calls}c{i} "
            self.stamps[text] = time.perf_counter()
            yield StreamChunk(text=text)
        yield StreamChunk(usage=TokenUsage(input=1000, output=200), finish_reason="stop", cost=0.0)


async def section_stream(ctx: Context) -> Section:
    a = ctx.args
    chunks = 20
    provider = StampingProvider(chunks=chunks, gap=0.002)
    rng = random.Random(7)
    added: list[float] = []
    last: list[float] = []  # the turn's last text chunk, followed at once by the finish chunk
    async with MnesisSession.open(
        model=MODEL, config=CONFIG, db_path=str(ctx.path("stream")), provider=provider
    ) as session:
        for _ in range(a.stream_turns):
            seen = 0
            async for event in session.stream(words(rng)):
                if isinstance(event, TextDelta):
                    seen += 1
                    delay = time.perf_counter() - provider.stamps[event.text]
                    (last if seen == chunks else added).append(delay)
    s = Section(
        "stream",
        f"stream(): provider chunk → caller's TextDelta, {a.stream_turns} turns × {chunks} chunks",
    )
    every = added + last
    p50, p99 = ms(statistics.median(every)), ms(percentile(every, 0.99))
    s.add("added latency p50, every chunk", p50, "ms", "≤ 0.2 ms", p50 <= 0.2)
    s.add("added latency p99, every chunk", p99, "ms", "≤ 0.2 ms", p99 <= 0.2)
    s.add("added latency p99, all but each turn's last chunk", ms(percentile(added, 0.99)), "ms")
    s.add("added latency p50, each turn's last chunk", ms(statistics.median(last)), "ms")
    s.add("added latency max", ms(max(every)), "ms")
    s.notes.append(
        f"chunks 2 ms apart, stamped with perf_counter() as the provider yields them; measured "
        f"when the consumer of session.stream() receives the matching TextDelta. The last "
        f"chunk ({100 / chunks:.0f}% of them) is followed at once by the finish chunk"
    )
    return s


# -- many sessions in one event loop --------------------------------------------------------


async def concurrent_sends(path: Path, sessions: int, turns: int) -> dict[str, float]:
    provider = MockProvider(lambda request: REPLY)
    opened = [
        await MnesisSession.create(model=MODEL, config=CONFIG, db_path=str(path), provider=provider)
        for _ in range(sessions)
    ]
    times: list[float] = []

    async def drive(session: MnesisSession, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(turns):
            began = time.perf_counter()
            await session.send(words(rng))
            times.append(time.perf_counter() - began)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(drive(session, i) for i, session in enumerate(opened)))
        elapsed = time.perf_counter() - began
    finally:
        for session in opened:
            await session.close()
    return {
        "turns_per_s": sessions * turns / elapsed,
        "median_ms": ms(statistics.median(times)),
        "p99_ms": ms(percentile(times, 0.99)),
        "max_ms": ms(max(times)),
    }


async def section_many(ctx: Context) -> Section:
    a = ctx.args
    s = Section(
        "many",
        f"Sessions sending at once in one event loop (one SQLite file, {a.many_turns} send() "
        "each, mock model)",
    )
    for count in (1, 8, 64):
        r = await concurrent_sends(ctx.path(f"many{count}"), count, a.many_turns)
        label = f"{count} session" + ("s" if count > 1 else "")
        s.add(f"{label}: aggregate", r["turns_per_s"], "turns/s")
        s.add(f"{label}: median turn", r["median_ms"], "ms")
        s.add(f"{label}: p99 turn", r["p99_ms"], "ms")
        s.add(f"{label}: max turn / median turn", r["max_ms"] / r["median_ms"], "x")
        s.data[str(count)] = r
    s.notes.append("a turn's time includes waiting for the other sessions' turns on the loop")
    return s


# -- rss: memory of a process holding sessions open ----------------------------------------


def rss_mib() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MiB."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    return out


async def rss_child(db: str, ids: list[str]) -> dict[str, Any]:
    """In a fresh process: load the sessions, assemble each one's context, hold them open."""
    before = rss_mib()
    began = time.perf_counter()
    first = await MnesisSession.load(ids[0], config=CONFIG, db_path=db)
    await first.context_for_next_turn()
    first_ms = ms(time.perf_counter() - began)
    opened = [first]
    for session_id in ids[1:]:
        session = await MnesisSession.load(session_id, config=CONFIG, db_path=db)
        await session.context_for_next_turn()
        opened.append(session)
    after = rss_mib()
    for session in opened:
        await session.close()
    return {"before": before, "after": after, "first_load_context_ms": first_ms}


async def run_rss_child(db: Path, ids: list[str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--rss-child",
        str(db),
        *ids,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, proc.returncode
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def section_rss(ctx: Context) -> Section:
    a = ctx.args
    s = Section("rss", "Resident memory of a fresh process holding sessions open")
    path, big_id = await big_session(ctx, a.big)
    big = await run_rss_child(path, [big_id])
    s.add(f"1 session of {a.big:,} turns: RSS", big["after"]["VmRSS"], "MiB")
    s.add(
        f"1 session of {a.big:,} turns: above the idle process",
        big["after"]["VmRSS"] - big["before"]["VmRSS"],
        "MiB",
    )
    s.add(
        f"first load() + context_for_next_turn() of a process, {a.big:,} turns",
        big["first_load_context_ms"],
        "ms",
    )
    many_path = ctx.path("rss64")
    ids = [await build_session(many_path, a.rss_session_turns, seed=i) for i in range(64)]
    many = await run_rss_child(many_path, ids)
    s.add(f"64 sessions of {a.rss_session_turns} turns: RSS", many["after"]["VmRSS"], "MiB")
    grown = many["after"]["VmRSS"] - many["before"]["VmRSS"]
    s.add(f"64 sessions of {a.rss_session_turns} turns: above the idle process", grown, "MiB")
    s.add("per session", grown / 64, "MiB")
    s.notes.append(
        f"idle process (Python + mnesis imported): {big['before']['VmRSS']:.1f} MiB; "
        "each session's context assembled once before measuring"
    )
    s.data = {"big": big, "many": many}
    return s


# -- grep -------------------------------------------------------------------------------------


async def section_grep(ctx: Context) -> Section:
    a = ctx.args
    path = ctx.path("grep")
    store = await SQLiteStore(path).open()
    await store.create_session(
        SessionRecord("big", MODEL, "default", None, "sys", "{}", time.time())
    )
    print(f"  appending {a.grep_size:,} messages for grep ...", file=sys.stderr)
    await grep_fill(store, "big", a.grep_size, {})
    await store.close()
    session = await MnesisSession.load("big", config=CONFIG, db_path=str(path))
    times = []
    hits = 0
    try:
        for i in range(a.grep_queries):
            word = GREP_VOCAB[i % len(GREP_VOCAB)]
            began = time.perf_counter()
            found = await session.grep(word)
            times.append(time.perf_counter() - began)
            hits += len(found.matches)
    finally:
        await session.close()
    size = a.grep_size
    s = Section("grep", f"grep of a common word over {size:,} messages ({a.grep_queries} queries)")
    p50, p99 = ms(statistics.median(times)), ms(percentile(times, 0.99))
    scale = "" if size == 1_000_000 else " (at 1M)"
    s.add("p50", p50, "ms")
    s.add("p99", p99, "ms", f"≤ 20 ms{scale}", p99 <= 20)
    s.add("matches returned per query (first page)", hits / a.grep_queries, "count")
    s.notes.append(
        "30-word messages from a 76-word vocabulary, built through the store's append as in "
        "recall.py; each word is in about a third of the messages"
    )
    return s


# -- main -------------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Context], Coroutine[Any, Any, Section]]] = {
    "sqlite": section_sqlite,
    "pg": section_pg,
    "peers": section_peers,
    "send": section_send,
    "load": section_load,
    "stream": section_stream,
    "many": section_many,
    "rss": section_rss,
    "grep": section_grep,
}

# name: (full, quick)
SIZES: dict[str, tuple[int, int]] = {
    "turns": (2_000, 300),
    "reps": (3, 3),
    "pg_turns": (1_000, 100),
    "peer_turns": (500, 50),
    "send_turns": (10_000, 1_000),
    "small": (1_000, 1_000),
    "big": (100_000, 5_000),
    "stream_turns": (50, 10),
    "many_turns": (50, 10),
    "rss_session_turns": (100, 20),
    "grep_size": (100_000, 20_000),
    "grep_queries": (200, 100),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds per section")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pg", default=PG_DEFAULT, help="server URL without the database")
    helps = {
        "turns": "sqlite: turns per run",
        "reps": "runs of each contender (sqlite, pg, peers), alternated",
        "pg_turns": "pg: turns per run",
        "peer_turns": "peers: turns per run",
        "send_turns": "send: turns of the session",
        "small": "load: the small session's turns",
        "big": "load, rss: the big session's turns",
        "stream_turns": "stream: turns of 20 chunks",
        "many_turns": "many: send() per session",
        "rss_session_turns": "rss: turns of each of the 64 sessions",
        "grep_size": "grep: stored messages",
        "grep_queries": "grep: queries",
    }
    for name, (full, quick) in SIZES.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=None,
            help=f"{helps[name]} (default {full:,}; --quick {quick:,})",
        )
    parser.add_argument("--rss-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.send_turns < 12:
        parser.error("--send-turns must be at least 12")
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    args.sections = [name for name in SECTIONS if name in only]
    return args


def main() -> None:
    args = parse_args()
    if args.rss_child:
        db, *ids = args.rss_child
        print(json.dumps(asyncio.run(rss_child(db, ids))))
        return
    folder = Path(tempfile.mkdtemp(prefix="mnesis-limits-"))
    ctx = Context(args, folder)
    results = []
    try:
        for name in args.sections:
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            began = time.perf_counter()
            section = asyncio.run(RUNNERS[name](ctx))
            section.data["seconds"] = time.perf_counter() - began
            results.append(section)
            if not args.json:
                print(render(section) + "\n", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "quick": args.quick,
                    "sizes": {name: getattr(args, name) for name in SIZES},
                    "sections": {
                        s.name: {
                            "title": s.title,
                            "rows": [asdict(r) for r in s.rows],
                            "notes": s.notes,
                            "data": s.data,
                        }
                        for s in results
                    },
                }
            )
        )


if __name__ == "__main__":
    main()
