#!/usr/bin/env python3
"""Soak: many ``send()`` turns on one session that compacts over and over.

Memory must stay flat and turns must not slow down as the stored history grows
while the context stays bounded. One session on a fresh SQLite file, the mock
model (instant replies with fixed usage; its summaries are instant too),
automatic compaction on a ``--window``-token model. Prints the process's RSS at
the start and the end, then a table per ``--block`` turns: p50 / p99 of a turn,
the compaction passes started, RSS at the block's end. The session is checked
with ``verify()`` at the end.

    python benchmarks/soak.py [--turns 20000] [--block 1000] [--window 32000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.llm.base import LLMRequest

MODEL = "openai/gpt-4o"
VOCAB = (
    "memory context window token summary store engine turn history message model budget "
    "session append durable recall expand grep compact prune level stream delta"
).split()


def rss_mib() -> float:
    """The process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def model(rng: random.Random) -> MockProvider:
    """Replies of 60 words with fixed usage; a summary echoes the transcript's tail."""
    reply = MockReply(
        text=" ".join(rng.choice(VOCAB) for _ in range(60)),
        usage=TokenUsage(input=2_000, output=80),
    )

    def answer(request: LLMRequest) -> MockReply:
        content = str(request.messages[-1]["content"])
        if "<transcript>" in content:
            return MockReply(text="Summary: " + content[-600:])
        return reply

    return MockProvider(answer)


async def soak(turns: int, block: int, window: int, folder: Path) -> None:
    config = MnesisConfig.model_validate(
        {
            "compaction": {"compaction_output_budget": window // 16},
            "model_overrides": {"context_limit": window, "max_output_tokens": window // 8},
        }
    )
    rng = random.Random(7)
    gc.collect()
    rss_start = rss_mib()
    rss_warm: float | None = None
    rows = []
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=str(folder / "soak.db"), provider=model(rng)
    ) as session:
        for first in range(0, turns, block):
            times: list[float] = []
            passes = 0
            for _ in range(min(block, turns - first)):
                text = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(40, 160)))
                began = time.perf_counter()
                result = await session.send(text)
                times.append(time.perf_counter() - began)
                passes += result.compaction_triggered
                if rss_warm is None:  # token encodings and the like load on the first turn
                    rss_warm = rss_mib()
            ordered = sorted(times)
            rows.append(
                (
                    first + 1,
                    first + len(times),
                    statistics.median(times) * 1000,
                    ordered[int(len(ordered) * 0.99)] * 1000,
                    passes,
                    rss_mib(),
                )
            )
        await session.wait_for_compaction()
        gc.collect()
        rss_end = rss_mib()  # before the checks below read the whole history
        problems = await session.verify()
        stored = len(await session.conversation_messages())
        context = (await session.context_breakdown()).total
        usable = session.usable_tokens
    size = (folder / "soak.db").stat().st_size / 2**20
    print(f"{turns:,} send() turns, usable window {usable:,} tokens, SQLite file")
    print(
        f"RSS before the first turn: {rss_start:.1f} MiB; after it: {rss_warm or 0:.1f} MiB; "
        f"at the end: {rss_end:.1f} MiB"
    )
    print(f"stored messages: {stored:,}; context at the end: {context:,} tokens; db {size:.1f} MiB")
    print(f"verify(): {'clean' if not problems else problems[:3]}")
    print()
    print("| turns | p50 per turn | p99 per turn | compaction passes started | RSS after |")
    print("|---|---|---|---|---|")
    for first, last, p50, p99, passes, rss in rows:
        print(f"| {first:,}–{last:,} | {p50:.2f} ms | {p99:.2f} ms | {passes} | {rss:.1f} MiB |")
    if problems or stored != 2 * turns:
        raise SystemExit(f"the soaked session is not whole: {stored} messages, {problems[:3]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=1_000, help="turns per row of the table")
    parser.add_argument("--window", type=int, default=32_000, help="the model's context limit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(soak(args.turns, args.block, args.window, Path(tmp)))
