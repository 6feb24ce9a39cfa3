"""How fast the web inspector serves a long session (issue 16: a 20,000-turn
session's page loads in under 1 s).

Builds a session of ``--turns`` recorded turns with the mock model (automatic
compaction on, so the DAG grows as in real use; every 7th turn carries a tool
call), then times, on the server's own loop, each API call the session page
makes, cold (the first request builds the turn index) and warm, and finally the
whole page in headless chromium: navigation until the timeline's first message
is on screen. Prints a table; the numbers depend on this machine's load.

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


async def browser_load(server: InspectorServer, session_id: str, repeat: int) -> list[float]:
    from playwright.async_api import async_playwright

    loads = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for _ in range(repeat):
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            await page.goto(f"{server.url()}#/s/{session_id}")
            await page.locator("#timeline .turn-head").first.wait_for(state="attached")
            await page.locator("#dag").wait_for(state="attached")
            loads.append(time.perf_counter() - start)
            await page.close()
        await browser.close()
    return loads


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--db", default=None, help="reuse or build the session here")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    db = args.db or str(Path(tempfile.mkdtemp()) / "inspector.db")
    start = time.perf_counter()
    if not await asyncio.to_thread(Path(db).exists):
        await build(db, args.turns)
        print(f"built {args.turns:,} turns in {time.perf_counter() - start:.1f} s ({db})")
    store = await open_store(db)
    server = InspectorServer(store)
    await server.start()
    try:
        info = (await store.list_sessions())[0]
        sid, ins = info.id, server.inspector
        print(
            f"session {sid}: {info.turns:,} turns, {info.messages:,} messages, "
            f"{info.summaries:,} summaries"
        )
        pages = [1]  # the last page, known once the overview is read
        rows = []
        for name, call in (
            ("overview (cold: builds the turn index)", lambda: ins.overview(sid)),
            ("chart", lambda: ins.chart(sid)),
            ("dag", lambda: ins.dag(sid)),
            ("timeline, first page", lambda: ins.timeline(sid, 1)),
            ("timeline, last page", lambda: ins.timeline(sid, pages[0])),
            ("grep 'orbit'", lambda: ins.grep(sid, "orbit")),
            ("context now", lambda: ins.context(sid)),
        ):
            cold, warm = await timed(call, args.repeat)
            rows.append((name, cold, warm))
            if name.startswith("overview"):
                pages[0] = (await ins.overview(sid))["pages"]
        print(f"\n{'API call':<42}{'first (s)':>11}{'warm median (s)':>17}")
        for name, cold, warm in rows:
            print(f"{name:<42}{cold:>11.3f}{warm:>17.3f}")
        if not args.no_browser:
            loads = await browser_load(server, sid, args.repeat)
            print(f"\nsession page in chromium (timeline + chart + DAG drawn), {len(loads)} loads:")
            print(f"  median {statistics.median(loads):.3f} s, max {max(loads):.3f} s")
    finally:
        await server.close()
        await release_store(store)


if __name__ == "__main__":
    asyncio.run(main())
