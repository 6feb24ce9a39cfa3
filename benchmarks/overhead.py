#!/usr/bin/env python3
"""Engine overhead of mnesis per turn, as history grows.

Runs one session of N turns with 150-word messages on a fresh SQLite file and
the mock model (no network, no sleeps), and prints a table:

- ``send()`` wall time per turn at turn 10 and turn N (median of turns 8-12
  and N-4..N). The mock model's own work is tiny; what is measured is the
  engine: append, assemble, stream, persist.
- ``record()`` per turn at turn 10 and turn N, and turns/s over all N.
- ``load()`` and ``load()`` + ``context_for_next_turn()`` of the N-turn
  session (median of 5).

With ``--json`` it prints one JSON object instead (used by
``compare_reference.py``). Usage::

    python benchmarks/overhead.py --turns 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, TokenUsage

MODEL = "anthropic/claude-opus-4-6"
# No compaction: this measures storage and assembly, not summarisation.
CONFIG = MnesisConfig.model_validate(
    {"compaction": {"auto": False}, "model_overrides": {"context_limit": 2_000_000}}
)
VOCAB = (
    "memory context window token summary store engine turn history message model "
    "budget session append durable recall expand grep describe compact prune level "
    "python async stream delta tool result file reference operator map agent"
).split()


def words(rng: random.Random, n: int = 150) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def window(series: list[float], turn: int) -> float:
    """Median of the per-turn times around ``turn`` (1-based), in ms."""
    lo = max(0, turn - 3) if turn <= 12 else turn - 5
    hi = min(len(series), turn + 2 if turn <= 12 else turn)
    return statistics.median(series[lo:hi]) * 1000


async def measure(turns: int, send_turns: int, load_reps: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(7)
    # A fixed reply with fixed usage: the model side costs the same at every turn,
    # so growth in the timings is the engine's.
    reply = MockReply(text=words(random.Random(8)), usage=TokenUsage(input=1000, output=200))
    provider = MockProvider(lambda request: reply)

    send_times: list[float] = []
    async with MnesisSession.open(
        model=MODEL, config=CONFIG, db_path=str(folder / "send.db"), provider=provider
    ) as session:
        for _ in range(send_turns):
            text = words(rng)
            start = time.perf_counter()
            await session.send(text)
            send_times.append(time.perf_counter() - start)

    record_times: list[float] = []
    db = str(folder / "record.db")
    session = await MnesisSession.create(model=MODEL, config=CONFIG, db_path=db, provider=provider)
    began = time.perf_counter()
    for _ in range(turns):
        user, assistant = words(rng), words(rng)
        start = time.perf_counter()
        await session.record(user, assistant)
        record_times.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - began
    assert len(await session.conversation_messages()) == 2 * turns
    await session.close()

    load_ms: list[float] = []
    load_context_ms: list[float] = []
    for _ in range(load_reps):
        start = time.perf_counter()
        loaded = await MnesisSession.load(session.id, db_path=db, provider=provider)
        loaded_at = time.perf_counter()
        context = await loaded.context_for_next_turn()
        done = time.perf_counter()
        assert len(context) == 2 * turns
        await loaded.close()
        load_ms.append((loaded_at - start) * 1000)
        load_context_ms.append((done - start) * 1000)

    return {
        "impl": "mnesis (this repo)",
        "python": sys.version.split()[0],
        "turns": turns,
        "send_turns": send_turns,
        "send_ms_turn10": window(send_times, 10),
        "send_ms_turnN": window(send_times, send_turns),
        "record_ms_turn10": window(record_times, 10),
        "record_ms_turnN": window(record_times, turns),
        "record_turns_per_s": turns / elapsed,
        "load_ms": statistics.median(load_ms),
        "load_context_ms": statistics.median(load_context_ms),
    }


def table(result: dict[str, Any]) -> str:
    n, s = result["turns"], result["send_turns"]
    rows = [
        ("send() per turn, turn 10", f"{result['send_ms_turn10']:.2f} ms"),
        (f"send() per turn, turn {s}", f"{result['send_ms_turnN']:.2f} ms"),
        (
            f"send() turn {s} / turn 10",
            f"{result['send_ms_turnN'] / result['send_ms_turn10']:.2f}x",
        ),
        ("record() per turn, turn 10", f"{result['record_ms_turn10']:.2f} ms"),
        (f"record() per turn, turn {n}", f"{result['record_ms_turnN']:.2f} ms"),
        (f"record() throughput over {n} turns", f"{result['record_turns_per_s']:.0f} turns/s"),
        (f"load() of a {n}-turn session", f"{result['load_ms']:.1f} ms"),
        ("load() + context_for_next_turn()", f"{result['load_context_ms']:.1f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--send-turns", type=int, default=None, help="default: --turns")
    parser.add_argument("--load-reps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="runs; each figure is the median")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.turns < 12:
        parser.error("--turns must be at least 12")
    runs = []
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(
                asyncio.run(
                    measure(args.turns, args.send_turns or args.turns, args.load_reps, Path(tmp))
                )
            )
    result = {
        key: statistics.median(r[key] for r in runs) if isinstance(value, float) else value
        for key, value in runs[0].items()
    }
    result["repeat"] = len(runs)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
