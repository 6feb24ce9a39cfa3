#!/usr/bin/env python3
"""Compaction: engine overhead of a pass, turn overhead in a session that
compacts over and over, and how stable the request prefix stays (prompt caching).

The summariser is the mock model (instant), so the numbers are the engine's own
cost. Prints two tables.

    python benchmarks/compaction.py [--turns 2000] [--pass-tokens 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import itertools

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage
from mnesis.llm.base import LLMRequest
from mnesis.tokens import TokenEstimator

MODEL = "openai/gpt-4o"
VOCAB = (
    "memory context window token summary store engine turn history message model budget "
    "session append durable recall expand grep compact prune level stream delta"
).split()
ESTIMATOR = TokenEstimator(MODEL)


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


class Recorder:
    """Mock model: instant replies and summaries; keeps each turn request's messages."""

    def __init__(self, fail_summaries: bool = False) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.fail_summaries = fail_summaries
        self.reply = MockReply(
            text=words(random.Random(3), 60), usage=TokenUsage(input=1000, output=80)
        )

    def __call__(self, request: LLMRequest) -> MockReply:
        content = str(request.messages[-1]["content"])
        if "<transcript>" in content:
            if self.fail_summaries:
                raise ConnectionError("summariser down")
            return MockReply(text="Summary: " + content[-600:])
        self.requests.append(request.messages)
        return self.reply


async def pass_overhead(tokens: int, folder: Path, fail: bool) -> dict[str, float]:
    config = MnesisConfig.model_validate(
        {
            "compaction": {"auto": False, "compaction_output_budget": 4_000},
            "model_overrides": {"context_limit": 2 * tokens, "max_output_tokens": 4_000},
        }
    )
    rng = random.Random(1)
    async with MnesisSession.open(
        model=MODEL,
        config=config,
        db_path=str(folder / f"p{fail}.db"),
        provider=MockProvider(Recorder(fail)),
    ) as session:
        while (await session.history() or [None])[-1] is None or (
            (await session.history())[-1].context_tokens.total < tokens
        ):
            for _ in range(50):
                await session.record(words(rng, 150), words(rng, 150))
        start = time.perf_counter()
        result = await session.compact()
        elapsed = (time.perf_counter() - start) * 1000
    return {
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "ms": elapsed,
        "level": result.level_used,
        "messages": result.compacted_message_count,
    }


async def long_session(turns: int, folder: Path) -> dict[str, Any]:
    config = MnesisConfig.model_validate(
        {
            "compaction": {"compaction_output_budget": 1_000},
            "model_overrides": {"context_limit": 12_000, "max_output_tokens": 1_000},
        }
    )
    recorder = Recorder()
    rng = random.Random(2)
    times: list[float] = []
    passes = 0
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=str(folder / "long.db"), provider=MockProvider(recorder)
    ) as session:
        for _ in range(turns):
            text = words(rng, rng.randint(40, 160))
            start = time.perf_counter()
            result = await session.send(text)
            times.append(time.perf_counter() - start)
            passes += result.compaction_triggered
        problems = await session.verify()
        usable = session.usable_tokens
    assert not problems, problems
    return {"times": times, "passes": passes, "requests": recorder.requests, "usable": usable}


def prefix_stability(requests: list[list[dict[str, Any]]]) -> list[float]:
    """For each request, the share of its tokens in a prefix identical to the previous one."""
    cache: dict[str, int] = {}

    def tokens(message: dict[str, Any]) -> int:
        key = repr(message)
        if key not in cache:
            cache[key] = ESTIMATOR.estimate(str(message.get("content") or "")) + 4
        return cache[key]

    shares = []
    for previous, current in itertools.pairwise(requests):
        same = 0
        for a, b in zip(previous, current, strict=False):
            if a != b:
                break
            same += tokens(b)
        shares.append(same / max(sum(tokens(m) for m in current), 1))
    return shares


def median_ms(series: list[float], around: int) -> float:
    lo, hi = max(0, around - 25), min(len(series), around + 25)
    return statistics.median(series[lo:hi]) * 1000


async def main(turns: int, pass_tokens: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mock = await pass_overhead(pass_tokens, folder, fail=False)
        level3 = await pass_overhead(pass_tokens, folder, fail=True)
        long = await long_session(turns, folder)
    print(
        f"| compaction pass over ~{pass_tokens // 1000}K tokens | tokens before → after | "
        "level | messages summarised | engine time |"
    )
    print("|---|---|---|---|---|")
    for label, row in (("mock summariser", mock), ("summariser down (level 3)", level3)):
        print(
            f"| {label} | {row['tokens_before']:,} → {row['tokens_after']:,} | "
            f"{row['level']} | {row['messages']:,} | {row['ms']:.0f} ms |"
        )
    times = long["times"]
    shares = prefix_stability(long["requests"])
    print()
    print(f"| session of {turns} send() turns, usable window {long['usable']:,} tokens | value |")
    print("|---|---|")
    for at in (10, turns // 2, turns - 25):
        print(f"| send() median around turn {at} | {median_ms(times, at):.2f} ms |")
    ordered = sorted(times)
    print(f"| send() p99 over all turns | {ordered[int(len(ordered) * 0.99)] * 1000:.2f} ms |")
    print(f"| turns that started a compaction pass | {long['passes']} |")
    print(
        f"| request tokens identical to the previous request's prefix (mean) | "
        f"{statistics.mean(shares) * 100:.1f}% |"
    )
    print(
        f"| requests with >= 90% of tokens in the cached prefix | "
        f"{sum(s >= 0.9 for s in shares) / len(shares) * 100:.1f}% |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--pass-tokens", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.pass_tokens))
