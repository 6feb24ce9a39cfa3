#!/usr/bin/env python3
"""SQLite vs PostgreSQL: append throughput with 1 and 8 writer processes, and grep latency.

Each writer process appends single-message transactions to its own session
through the store API; grep runs through ``MnesisSession.grep`` on a session of
``--grep-messages`` messages. PostgreSQL is the local server
(``--pg postgresql://postgres@127.0.0.1:5432``); a scratch database is created
and dropped.

    python benchmarks/backends.py [--appends 400] [--grep-messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


async def writers(url: str, processes: int, appends: int) -> float:
    """Messages per second with ``processes`` writers appending at once."""
    tag = secrets.token_hex(3)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            url,
            f"w{tag}{n}",
            str(appends),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None and await proc.stdout.readline() == b"ready\n"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    for proc in procs:
        await proc.communicate()
        assert proc.returncode == 0
    return processes * appends / (time.perf_counter() - start)


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


async def main(appends: int, grep_messages: int, queries: int, pg: str) -> None:
    import asyncpg

    name = "mnesis_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(f"{pg}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backends = {
                "SQLite (file, WAL)": str(Path(tmp) / "bench.db"),
                "PostgreSQL (local)": f"{pg}/{name}",
            }
            for label, url in backends.items():
                one = await writers(url, 1, appends)
                eight = await writers(url, 8, appends)
                p50, p99 = await grep_latency(url, grep_messages, queries)
                rows.append((label, one, eight, p50, p99))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"| backend | appends/s, 1 writer | appends/s, 8 writer processes | "
        f"grep p50 / p99 ({grep_messages:,} messages) |"
    )
    print("|---|---|---|---|")
    for label, one, eight, p50, p99 in rows:
        print(f"| {label} | {one:,.0f} | {eight:,.0f} | {p50:.1f} / {p99:.1f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=400, help="per writer process")
    parser.add_argument("--grep-messages", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    asyncio.run(main(args.appends, args.grep_messages, args.queries, args.pg))
