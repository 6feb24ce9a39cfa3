"""How fast the web inspector serves a long session (issue 16: a 20,000-turn
session's page loads in under 1 s).

Builds a session of ``--turns`` recorded turns with the mock model (automatic
compaction on, so the DAG grows as in real use; every 7th turn carries a tool
call), then times each API call the session page makes on a fresh ``Inspector``
(first: nothing derived yet, the first one reads the session's outline; warm:
the median of repeats), rebuilds a sample of past turns' contexts and checks
them against the tokens recorded for each, and finally loads the whole page in
headless chromium, cold (a new server over a newly opened store) and warm.
Prints tables; the numbers depend on this machine's load.

    python benchmarks/inspector.py --turns 20000 [--db /tmp/inspector.db]
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

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnesis import MnesisConfig, MnesisSession, MockProvider, ToolPart
from mnesis.llm.base import LLMRequest
from mnesis.store import release_store
from mnesis.web import InspectorServer, open_store
from mnesis.web.data import Inspector

WORDS = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()


def summarise(request: LLMRequest) -> str:
    if "<transcript>" in str(request.messages[-1]["content"]):
        return "Goal: keep the survey going. Discoveries: tides, lamps and cedar."
    return "noted"


async def build(db: str, turns: int) -> str:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 16_000, "max_output_tokens": 1_000},
            "compaction": {"compaction_output_budget": 1_000},
        }
    )
    rng = random.Random(16)
    async with MnesisSession.open(
        model="openai/gpt-4o-mini", config=config, db_path=db, provider=MockProvider(summarise)
    ) as session:
        for turn in range(1, turns + 1):
            user = f"turn {turn}: " + " ".join(rng.choice(WORDS) for _ in range(40))
            reply: str | list[ToolPart] = " ".join(rng.choice(WORDS) for _ in range(25))
            if turn % 7 == 0:
                reply = [
                    ToolPart(
                        tool_name="survey",
                        tool_call_id=f"call_{turn}",
                        input={"turn": turn},
                        output="reading " * 60,
                        status="completed",
                    )
                ]
            await session.record(user, reply)
        await session.wait_for_compaction()
        return session.id


async def timed(call, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    await call()
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        warm.append(time.perf_counter() - start)
    return cold, statistics.median(warm)


async def load_page(browser, url: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds from navigation until the timeline, the chart and the DAG are drawn."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    await page.goto(url)
    await page.locator("#timeline .turn-head").first.wait_for(state="attached")
    await page.locator("#context-chart").wait_for(state="attached")
    await page.locator("#dag").wait_for(state="attached")
    elapsed = time.perf_counter() - start
    await page.close()
    return elapsed


async def browser_loads(db: str, session_id: str, repeat: int) -> tuple[list[float], list[float]]:
    """Cold loads (each on a new server over a newly opened store: nothing derived
    yet) and warm ones (the same server again)."""
    from playwright.async_api import async_playwright

    cold, warm = [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for _ in range(repeat):
            store = await open_store(db)
            server = InspectorServer(store)
            await server.start()
            try:
                url = f"{server.url()}#/s/{session_id}"
                cold.append(await load_page(browser, url))
                warm.append(await load_page(browser, url))
            finally:
                await server.close()
                await release_store(store)
        await browser.close()
    return cold, warm


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--db", default=None, help="reuse or build the session here")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample", type=int, default=300, help="past turns rebuilt and checked")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    db = args.db or str(Path(tempfile.mkdtemp()) / "inspector.db")
    start = time.perf_counter()
    if not await asyncio.to_thread(Path(db).exists):
        await build(db, args.turns)
        print(f"built {args.turns:,} turns in {time.perf_counter() - start:.1f} s ({db})")
    store = await open_store(db)
    try:
        info = (await store.list_sessions())[0]
        sid = info.id
        print(
            f"session {sid}: {info.turns:,} turns, {info.messages:,} messages, "
            f"{info.summaries:,} summaries"
        )
        ins = Inspector(store)  # fresh: nothing derived yet
        last = max(1, -(-info.turns // 50))
        rows = []
        for name, call in (
            ("overview (the first request: outline read)", lambda: ins.overview(sid)),
            ("chart", lambda: ins.chart(sid)),
            ("dag", lambda: ins.dag(sid)),
            ("timeline, first page", lambda: ins.timeline(sid, 1)),
            ("timeline, last page", lambda: ins.timeline(sid, last)),
            ("grep 'orbit'", lambda: ins.grep(sid, "orbit")),
            ("context now", lambda: ins.context(sid)),
            (f"received, turn {info.turns // 2:,}", lambda: ins.received(sid, info.turns // 2)),
        ):
            cold, warm = await timed(call, args.repeat)
            rows.append((name, cold, warm))
        print(f"\n{'API call (one Inspector, in page order)':<46}{'first (s)':>10}{'warm (s)':>10}")
        for name, cold, warm in rows:
            print(f"{name:<46}{cold:>10.3f}{warm:>10.3f}")

        turns = sorted(
            random.Random(16).sample(range(1, info.turns + 1), min(args.sample, info.turns))
        )
        chart = await ins.chart(sid)
        turns = sorted(
            {*turns, *(m["turn"] + 1 for m in chart["compactions"] if m["turn"] < info.turns)}
        )
        matched, late, spent = 0, 0, []
        for turn in turns:
            begun = time.perf_counter()
            got = await ins.received(sid, turn)
            spent.append(time.perf_counter() - begun)
            matched += bool(got.get("check", {}).get("matches"))
            late += bool(got.get("late"))
        print(
            f"\npast turns rebuilt (a sample and every turn right after a compaction): "
            f"{len(turns):,}; matching the tokens recorded: {matched:,}; "
            f"of those, with a change made while the turn ran left out: {late:,}; "
            f"median {statistics.median(spent) * 1000:.0f} ms a turn"
        )
    finally:
        await release_store(store)
    if not args.no_browser:
        cold_loads, warm_loads = await browser_loads(db, sid, args.repeat)
        print(f"\nsession page in chromium (timeline, chart, DAG), {len(cold_loads)} loads each:")
        print(
            f"  cold (new server, new store): median {statistics.median(cold_loads):.3f} s, "
            f"max {max(cold_loads):.3f} s"
        )
        print(
            f"  warm (same server again):     median {statistics.median(warm_loads):.3f} s, "
            f"max {max(warm_loads):.3f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
