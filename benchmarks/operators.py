#!/usr/bin/env python3
"""LLMMap engine overhead over many items, that concurrency is honoured, and
explorer time on big files.

    python benchmarks/operators.py [--items 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pydantic import BaseModel

from mnesis import LLMMap, MockProvider
from mnesis.files import LargeFileHandler
from mnesis.llm.base import LLMRequest


class Label(BaseModel):
    label: str
    score: float


async def map_overhead(items: int, concurrency: int, delay: float) -> dict[str, float]:
    in_flight = 0
    peak = 0

    async def model(request: LLMRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if delay:
            await asyncio.sleep(delay)
        in_flight -= 1
        return '{"label": "ok", "score": 0.5}'

    op = LLMMap(model="openai/gpt-4o", provider=MockProvider(model))
    start = time.perf_counter()
    batch = await op.run_all(
        range(items), "Classify item {{ item }}", Label, concurrency=concurrency
    )
    elapsed = time.perf_counter() - start
    assert len(batch.successes) == items
    return {"elapsed": elapsed, "per_item_us": elapsed / items * 1e6, "peak": peak}


async def explorers(folder: Path, json_rows: int) -> list[tuple[str, float, int]]:
    rng = random.Random(1)
    big_json = folder / "big.json"
    rows = [
        {
            "id": i,
            "name": f"user{i}",
            "tags": ["a", "b"],
            "score": rng.random(),
            "address": {"city": "x" * 10, "zip": i},
        }
        for i in range(json_rows)
    ]
    big_json.write_text(json.dumps({"users": rows}))
    big_py = folder / "big.py"
    chunks = []
    for i in range(2_500):
        chunks.append(
            f"class Model{i}(Base):\n    def run(self, x: int) -> int:\n        return x + {i}\n\n"
        )
        chunks.append(f"def helper_{i}(a, b=2, *args, **kw):\n    return a * b\n\n\n")
    big_py.write_text("".join(chunks))
    handler = LargeFileHandler()
    out = []
    for path in (big_json, big_py):
        start = time.perf_counter()
        part = await handler.handle(path)
        out.append(
            (
                f"{path.suffix} {path.stat().st_size / 2**20:.0f} MB, "
                f"{len(path.read_text().splitlines()):,} lines",
                time.perf_counter() - start,
                len(part.exploration_summary),
            )
        )
    return out


async def main(items: int, json_rows: int) -> None:
    fast = await map_overhead(items, 16, 0.0)
    bounded = await map_overhead(2_000, 8, 0.002)
    print(f"| LLMMap over {items:,} items, mock model (instant) | value |")
    print("|---|---|")
    print(f"| total | {fast['elapsed']:.2f} s |")
    print(f"| engine overhead per item | {fast['per_item_us']:.0f} µs |")
    print(f"| peak concurrent calls at concurrency=8 (2 ms calls) | {bounded['peak']:.0f} |")
    print(
        f"| 2,000 items × 2 ms at concurrency=8 | {bounded['elapsed']:.2f} s "
        f"(ideal {2_000 * 0.002 / 8:.2f} s) |"
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = await explorers(Path(tmp), json_rows)
    print("\n| explorer (file → reference) | time | outline |")
    print("|---|---|---|")
    for label, seconds, size in rows:
        print(f"| {label} | {seconds * 1000:.0f} ms | {size:,} chars |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--json-rows", type=int, default=420_000, help="~55 MB by default")
    args = parser.parse_args()
    asyncio.run(main(args.items, args.json_rows))
