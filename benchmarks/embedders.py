#!/usr/bin/env python3
"""The offline embedder on this machine: cold start, memory, throughput, query latency.

Cold start is timed in fresh processes (import, find the weights, decompress
and read them, build the tokenizer, first vector). Throughput embeds chat-like
texts (~20 tokens) and texts at the model's 256-token limit in batches of 32
through ``LocalEmbedder.embed`` (so the worker-thread hop is included).
Latency is one short query per call, as ``search()`` embeds a question.

    python benchmarks/embedders.py [--texts 512] [--queries 200] [--cold 3]

Needs the semantic extra (``pip install -e '.[semantic]'``). Prints tables;
no number here is asserted anywhere (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnesis.llm.embedders import LocalEmbedder, semantic_available

_COLD = """
import json, resource, time, asyncio
t0 = time.perf_counter()
from mnesis.llm.embedders import LocalEmbedder
async def main():
    e = LocalEmbedder()
    await e.embed(["first vector"])
    t1 = time.perf_counter()
    e.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": t1 - t0, "rss_mb": rss}))
asyncio.run(main())
"""

SUBJECTS = "billing server|staging database|the deploy|our cache|the login page|invoice job".split(
    "|"
)
VERBS = "moved to|failed on|listens on|was rolled back from|now needs|times out after".split("|")
OBJECTS = "port 8443|eu-west-1|Tuesday's release|two retries|the new TLS cert|30 seconds".split("|")


def chat_texts(n: int, rng: random.Random) -> list[str]:
    """Short chat-like sentences, ~15-25 tokens each."""
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}, "
        f"said user {rng.randint(1, 99)} about ticket #{rng.randint(1000, 9999)}"
        for _ in range(n)
    ]


def long_texts(n: int, rng: random.Random) -> list[str]:
    """Texts past the 256-token limit (truncated by the embedder)."""
    return [" ".join(chat_texts(20, rng)) for _ in range(n)]


def cold_starts(runs: int) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", _COLD], capture_output=True, text=True, check=True
        )
        out.append(json.loads(proc.stdout))
    return out


async def throughput(embedder: LocalEmbedder, texts: list[str], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        await embedder.embed(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


async def query_latencies(embedder: LocalEmbedder, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        await embedder.embed([q])
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold", type=int, default=3)
    args = parser.parse_args()
    if not semantic_available():
        sys.exit("needs the semantic extra: pip install -e '.[semantic]'")
    rng = random.Random(14)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    colds = cold_starts(args.cold)
    seconds = [c["seconds"] for c in colds]
    print("\n| cold start (fresh process, import → first vector) | value |")
    print("|---|---|")
    print(f"| median of {len(colds)} | {statistics.median(seconds):.2f} s |")
    print(f"| best | {min(seconds):.2f} s |")
    print(f"| peak RSS of that process | {max(c['rss_mb'] for c in colds):.0f} MB |")

    embedder = LocalEmbedder(batch_size=32)
    await embedder.load()
    await embedder.embed(chat_texts(32, rng))  # warm the BLAS threads
    short = chat_texts(args.texts, rng)
    long = long_texts(max(args.texts // 8, 32), rng)
    print("\n| throughput (batches of 32) | texts/s |")
    print("|---|---|")
    print(f"| chat-like, ~20 tokens | {await throughput(embedder, short, 32):.0f} |")
    print(f"| at the 256-token limit | {await throughput(embedder, long, 32):.1f} |")

    latencies = await query_latencies(embedder, chat_texts(args.queries, rng))
    print(f"\n| one query, {args.queries} calls | ms |")
    print("|---|---|")
    for p in (50, 90, 99):
        print(f"| p{p} | {pct(latencies, p):.1f} |")
    await embedder.aclose()


if __name__ == "__main__":
    asyncio.run(main())
