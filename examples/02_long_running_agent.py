"""A long conversation on the embedded defaults: SQLite and the mock model.

Runs with no API key and no network (``MNESIS_MOCK_LLM=1`` is set here unless
you set it yourself). It streams one reply live, runs a few hundred more
turns, closes the session, resumes it from the database, and shows that
nothing was lost.

    python examples/02_long_running_agent.py [--turns 300] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MNESIS_MOCK_LLM", "1")

from mnesis import MnesisSession
from mnesis.events.bus import MnesisEvent

TOPICS = ["the GIL", "async IO", "SQLite WAL", "prompt caching", "token budgets", "summaries"]


async def main(turns: int, db: str) -> None:
    print(f"database: {db}")
    created = 0

    def count(event: MnesisEvent, payload: dict[str, object]) -> None:
        nonlocal created
        created += 1

    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6",
        system_prompt="You are a helpful assistant.",
        db_path=db,
    ) as session:
        session.subscribe(MnesisEvent.MESSAGE_CREATED, count)
        print(f"session {session.id}\n\nturn 1 (streamed live):")
        async for event in session.stream("Explain the GIL in Python."):
            if event.type == "text_delta":
                print(event.text, end="", flush=True)
            elif event.type == "turn_complete":
                print(f"\n  tokens: {event.result.tokens.effective_total()}\n")

        started = time.perf_counter()
        for turn in range(2, turns + 1):
            topic = TOPICS[turn % len(TOPICS)]
            result = await session.send(f"Turn {turn}: tell me one more thing about {topic}.")
            if turn % 100 == 0:
                print(f"turn {turn}: {result.text[:60]}...")
        elapsed = time.perf_counter() - started
        print(
            f"\n{turns - 1} more turns in {elapsed:.2f} s "
            f"({(turns - 1) / elapsed:.0f} turns/s with the mock model)"
        )
        print(f"messages stored: {created}, tokens used: {session.token_usage.effective_total()}")
        session_id = session.id

    resumed = await MnesisSession.load(session_id, db_path=db)
    stored = await resumed.conversation_messages()
    context = await resumed.context_for_next_turn()
    snapshots = resumed.history()
    problems = await resumed.verify()
    print(f"\nresumed: {len(stored)} messages in the log, {len(context)} chat messages in context")
    print(f"last snapshot: {snapshots[-1].context_tokens}")
    print(f"store invariants: {'ok' if not problems else problems}")
    result = await resumed.send("What did we talk about first?")
    print(f"after resume: {result.text[:80]}")
    await resumed.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A long mnesis session with the mock model")
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--db", default=None, help="database file (default: a temporary one)")
    args = parser.parse_args()
    if args.db:
        asyncio.run(main(args.turns, args.db))
    else:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(args.turns, str(Path(folder) / "demo.db")))
