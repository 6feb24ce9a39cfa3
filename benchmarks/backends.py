#!/usr/bin/env python3
"""SQLite vs PostgreSQL: append throughput, writers sharing one session, grep latency.

Each writer process of the first table appends single-message transactions to
its own session through the store API. In the second, 1, 4 and 8 processes
load ONE session and each runs ``--shared-turns`` ``send()`` turns on it (mock
model, compaction off): turns/s over all of them, p99 of a turn, the turns that
raised, and whether the session then holds every turn whole (2 messages per
turn, sequence and turn numbers without gaps, ``verify()`` clean). Grep runs
through ``MnesisSession.grep`` on a session of ``--grep-messages`` messages.
PostgreSQL is the local server (``--pg postgresql://postgres@127.0.0.1:5432``);
a scratch database is created and dropped.

    python benchmarks/backends.py [--appends 400] [--shared-turns 200] [--grep-messages 20000]
    python benchmarks/backends.py --shared-only [--writers 1,4,8]   # just the one-session rows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

WRITER = r"""
import asyncio, random, sys, time
from mnesis.models.config import StoreConfig
from mnesis.models.message import TextPart
from mnesis.store import NewMessage, NewPart, SessionRecord, acquire_store, release_store

url, session_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
words = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()

async def main():
    store = await acquire_store(url, StoreConfig())
    await store.create_session(SessionRecord(session_id, "openai/gpt-4o", "bench", None, "s",
                                             "{}", time.time()))
    rng = random.Random(session_id)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        text = " ".join(rng.choice(words) for _ in range(30))
        message = NewMessage(f"{session_id}-{i}", "user", (NewPart(TextPart(text=text), 40),),
                             time.time())
        await store.append(session_id, (message,))
    await release_store(store)

asyncio.run(main())
"""


SHARED_WRITERS = (1, 4, 8)


async def run_together(script: str, argvs: list[list[str]]) -> tuple[list[str], float]:
    """One process of ``script`` per argument list, all released at once once ready.

    Returns:
        Each process's last line of output, and the seconds from release to the last exit.
    """
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for argv in argvs
    ]
    for proc in procs:
        assert proc.stdout is not None and await proc.stdout.readline() == b"ready\n"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outputs = [(await proc.communicate())[0] for proc in procs]
    elapsed = time.perf_counter() - start
    assert all(proc.returncode == 0 for proc in procs)
    return [(out.decode().splitlines() or [""])[-1] for out in outputs], elapsed


async def writers(url: str, processes: int, appends: int) -> float:
    """Messages per second with ``processes`` writers appending at once."""
    tag = secrets.token_hex(3)
    argvs = [[url, f"w{tag}{n}", str(appends)] for n in range(processes)]
    _, elapsed = await run_together(WRITER, argvs)
    return processes * appends / elapsed


SHARED_WRITER = r"""
import asyncio, json, sys, time
from mnesis import MnesisSession, MockProvider, MockReply, TokenUsage

url, session_id, name, turns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
reply = MockReply(text="noted " * 30, usage=TokenUsage(input=400, output=40))

async def main():
    provider = MockProvider(lambda request: reply)
    session = await MnesisSession.load(session_id, db_path=url, provider=provider)
    print("ready", flush=True)
    sys.stdin.readline()
    times, errors = [], []
    for i in range(turns):
        began = time.perf_counter()
        try:
            await session.send(f"{name} turn {i}: " + "river stone lamp orbit cedar " * 6)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        times.append(time.perf_counter() - began)
    await session.close()
    print(json.dumps({"times": times, "errors": errors}), flush=True)

asyncio.run(main())
"""


async def shared_session(url: str, processes: int, turns: int) -> dict[str, Any]:
    """``processes`` writers taking ``turns`` turns each on one session."""
    from mnesis import MnesisConfig, MnesisSession

    config = MnesisConfig.model_validate(
        {"compaction": {"auto": False}, "model_overrides": {"context_limit": 2_000_000}}
    )
    async with MnesisSession.open(model="openai/gpt-4o", config=config, db_path=url) as session:
        session_id = session.id
    argvs = [[url, session_id, f"w{n}", str(turns)] for n in range(processes)]
    lines, elapsed = await run_together(SHARED_WRITER, argvs)
    times: list[float] = []
    errors: list[str] = []
    for line in lines:
        report = json.loads(line)
        times += report["times"]
        errors += report["errors"]
    session = await MnesisSession.load(session_id, db_path=url, config=config)
    try:
        total = processes * turns
        seqs = [m.message.seq for m in await session.conversation_messages()]
        indexes = [s.turn_index for s in await session.history()]
        whole = (
            seqs == list(range(1, 2 * total + 1))
            and indexes == list(range(1, total + 1))
            and not await session.verify()
        )
    finally:
        await session.close()
    ordered = sorted(times)
    return {
        "turns_per_s": len(times) / elapsed,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "errors": errors,
        "whole": whole,
    }


async def grep_latency(url: str, messages: int, queries: int) -> tuple[float, float]:
    from mnesis import MnesisConfig, MnesisSession, MockProvider
    from mnesis.models.message import TextPart
    from mnesis.store import NewMessage, NewPart

    rng = random.Random(3)
    words = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()
    config = MnesisConfig.model_validate({"compaction": {"auto": False}})
    session = await MnesisSession.create(
        model="openai/gpt-4o", config=config, db_path=url, provider=MockProvider()
    )
    store = session._store  # bulk loading through the store, like the recall benchmark
    planted = {}
    for start in range(0, messages, 1_000):
        batch = []
        for i in range(start, min(start + 1_000, messages)):
            text = " ".join(rng.choice(words) for _ in range(30))
            if i % (messages // queries) == 0:
                key = f"planted{i}x"
                planted[key] = i
                text += f" {key}"
            batch.append(
                NewMessage(f"g{i}", "user", (NewPart(TextPart(text=text), 40),), time.time())
            )
        await store.append(session.id, tuple(batch))
    times = []
    for key in planted:
        began = time.perf_counter()
        found = await session.grep(key)
        times.append(time.perf_counter() - began)
        assert len(found) == 1
    for _ in range(queries):
        began = time.perf_counter()
        await session.grep(f"{rng.choice(words)} {rng.choice(words)}")
        times.append(time.perf_counter() - began)
    await session.close()
    ordered = sorted(times)
    return statistics.median(times) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


async def main(
    appends: int,
    shared_turns: int,
    grep_messages: int,
    queries: int,
    pg: str,
    *,
    shared_only: bool = False,
    shared_writers: tuple[int, ...] = SHARED_WRITERS,
) -> None:
    import asyncpg

    name = "mnesis_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(f"{pg}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    rows = []
    shared = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backends = {
                "SQLite (file, WAL)": str(Path(tmp) / "bench.db"),
                "PostgreSQL (local)": f"{pg}/{name}",
            }
            for label, url in backends.items():
                for processes in shared_writers:
                    shared.append(
                        (label, processes, await shared_session(url, processes, shared_turns))
                    )
                if shared_only:
                    continue
                one = await writers(url, 1, appends)
                eight = await writers(url, 8, appends)
                p50, p99 = await grep_latency(url, grep_messages, queries)
                rows.append((label, one, eight, p50, p99))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    if rows:
        print(
            f"| backend | appends/s, 1 writer | appends/s, 8 writer processes | "
            f"grep p50 / p99 ({grep_messages:,} messages) |"
        )
        print("|---|---|---|---|")
        for label, one, eight, p50, p99 in rows:
            print(f"| {label} | {one:,.0f} | {eight:,.0f} | {p50:.1f} / {p99:.1f} ms |")
        print()
    print(
        f"| backend | writer processes on one session ({shared_turns} send() each) | "
        "turns/s | p99 per turn | errors | every turn stored whole |"
    )
    print("|---|---|---|---|---|---|")
    for label, processes, r in shared:
        print(
            f"| {label} | {processes} | {r['turns_per_s']:,.0f} | {r['p99_ms']:.1f} ms | "
            f"{len(r['errors'])} | {'yes' if r['whole'] else 'NO'} |"
        )
    for label, processes, r in shared:
        for error in sorted(set(r["errors"]))[:3]:
            print(f"{label}, {processes} writers: {error}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=400, help="per writer process")
    parser.add_argument(
        "--shared-turns", type=int, default=200, help="send() turns per process on one session"
    )
    parser.add_argument("--grep-messages", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--shared-only", action="store_true", help="only the writers sharing one session"
    )
    parser.add_argument(
        "--writers",
        default=",".join(map(str, SHARED_WRITERS)),
        help="writer processes on one session, comma-separated",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.appends,
            args.shared_turns,
            args.grep_messages,
            args.queries,
            args.pg,
            shared_only=args.shared_only,
            shared_writers=tuple(int(n) for n in args.writers.split(",")),
        )
    )
