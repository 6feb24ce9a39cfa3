#!/usr/bin/env python3
"""grep over a large stored history: latency, index size, append cost.

Builds one session of N messages (default 1,000,000, ~30 words each, with
planted facts) through the store's append API, then times grep queries through
the public ``MnesisSession.grep``. Also measures what the full-text index adds
to each append, by appending the same batches to a store whose index inserts
are ignored.

    python benchmarks/recall.py [--messages 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnesis import MnesisConfig, MnesisSession, MockProvider, TextPart
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore

VOCAB = (
    "the of and to in is that for it as with was on be by this are or from at an which "
    "context memory window token summary store engine turn history message model budget "
    "session append durable recall expand grep compact prune level python async stream "
    "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal garden "
    "copper velvet lantern meadow thunder crystal falcon anchor summit willow"
).split()
BATCH = 2_000


def batch_messages(
    rng: random.Random, start: int, count: int, planted: dict[int, str]
) -> tuple[NewMessage, ...]:
    out = []
    for i in range(start, start + count):
        words = [rng.choice(VOCAB) for _ in range(30)]
        if i in planted:
            words.insert(rng.randint(0, 30), planted[i])
        text = " ".join(words)
        out.append(
            NewMessage(
                id=f"m{i:08d}",
                role="user" if i % 2 == 0 else "assistant",
                parts=(NewPart(TextPart(text=text), 40),),
                created_at=time.time(),
            )
        )
    return tuple(out)


async def fill(store: SQLiteStore, session_id: str, total: int, planted: dict[int, str]) -> float:
    rng = random.Random(11)
    spent = 0.0
    for start in range(0, total, BATCH):
        messages = batch_messages(rng, start, min(BATCH, total - start), planted)
        began = time.perf_counter()
        await store.append(session_id, messages)
        spent += time.perf_counter() - began
    return spent


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def main(total: int, queries: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mnesis-recall-"))
    try:
        rng = random.Random(5)
        planted = {
            rng.randrange(total): f"planted{n:05d}x{rng.randint(100, 999)}" for n in range(queries)
        }
        db = folder / "recall.db"
        store = await SQLiteStore(db).open()
        await store.create_session(
            SessionRecord("big", "openai/gpt-4o", "default", None, "sys", "{}", time.time())
        )
        print(f"appending {total:,} messages ...", flush=True)
        with_index = await fill(store, "big", total, planted)
        await store.close()

        # The same appends with the index inserts ignored, for the index's cost.
        base_db = folder / "noindex.db"
        base = await SQLiteStore(base_db).open()
        conn = sqlite3.connect(base_db)
        conn.executescript(
            "DROP TABLE search_index;"
            "CREATE TABLE search_index (rowid INTEGER PRIMARY KEY, sid, body);"
            "CREATE TRIGGER skip BEFORE INSERT ON search_index BEGIN SELECT RAISE(IGNORE); END;"
        )
        conn.close()
        await base.create_session(
            SessionRecord("big", "openai/gpt-4o", "default", None, "sys", "{}", time.time())
        )
        sample = min(total, 200_000)
        without_index = await fill(base, "big", sample, {})
        await base.close()

        size_total = db.stat().st_size
        copy = folder / "copy.db"
        shutil.copy(db, copy)
        conn = sqlite3.connect(copy)
        conn.executescript("DROP TABLE search_index; VACUUM;")
        conn.close()
        index_size = size_total - copy.stat().st_size

        session = await MnesisSession.load(
            "big",
            db_path=str(db),
            provider=MockProvider(),
            config=MnesisConfig.model_validate({"compaction": {"auto": False}}),
        )
        keys = list(planted.items())
        kinds: dict[str, list[float]] = {
            "rare fact (1 hit)": [],
            "common word (first page)": [],
            "two-word phrase": [],
            "regex, first page": [],
        }
        for index, key in keys:
            began = time.perf_counter()
            result = await session.grep(key)
            kinds["rare fact (1 hit)"].append(time.perf_counter() - began)
            assert result.matches and result.matches[0].message_id == f"m{index:08d}", key
        for word in rng.sample(VOCAB, min(queries, len(VOCAB))) * (queries // len(VOCAB) + 1):
            began = time.perf_counter()
            await session.grep(word)
            kinds["common word (first page)"].append(time.perf_counter() - began)
        for _ in range(queries):
            phrase = f"{rng.choice(VOCAB)} {rng.choice(VOCAB)}"
            began = time.perf_counter()
            await session.grep(phrase)
            kinds["two-word phrase"].append(time.perf_counter() - began)
        for _ in range(min(queries, 50)):
            began = time.perf_counter()
            await session.grep(r"\bmeadow\s+thunder\b", regex=True)
            kinds["regex, first page"].append(time.perf_counter() - began)
        await session.close()

        print(f"\n| grep over {total:,} stored messages | p50 | p99 |")
        print("|---|---|---|")
        for kind, times in kinds.items():
            print(
                f"| {kind} | {statistics.median(times) * 1000:.1f} ms | "
                f"{percentile(times, 0.99) * 1000:.1f} ms |"
            )
        per_msg_with = with_index / total * 1e6
        per_msg_without = without_index / sample * 1e6
        print("\n| index | value |\n|---|---|")
        print(f"| database size | {size_total / 2**20:,.0f} MiB |")
        print(
            f"| of which the full-text index | {index_size / 2**20:,.0f} MiB "
            f"({index_size / size_total * 100:.0f}%) |"
        )
        print(f"| append, per message, with the index | {per_msg_with:.1f} µs |")
        print(f"| append, per message, index inserts ignored | {per_msg_without:.1f} µs |")
        print(
            f"| what the index adds to an append | "
            f"{(per_msg_with - per_msg_without) / per_msg_without * 100:.0f}% |"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.queries))
