"""A process killed at any moment of a compaction pass leaves the store intact."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.llm.base import LLMRequest

CONFIG = {
    "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
    "compaction": {"compaction_output_budget": 500},
}

CHILD = r"""
import asyncio, json, random, sys
from mnesis import MnesisConfig, MnesisSession, MockProvider

db, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)

async def model(request):
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content:
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        return "Summary: " + content[-200:]
    return "reply " + str(rng.random())

async def main():
    config = MnesisConfig.model_validate(json.loads(sys.argv[3]))
    session = await MnesisSession.create(
        model="openai/gpt-4o", config=config, db_path=db, provider=MockProvider(model),
        session_id="crash",
    )
    print("ready", flush=True)
    turn = 0
    while True:
        turn += 1
        await session.send(" ".join(rng.choice("abcdefgh") * 4 for _ in range(150)))
        if turn % 5 == 0:
            await session.compact()

asyncio.run(main())
"""


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_sigkill_mid_compaction_leaves_the_previous_context_intact(
    tmp_path: Path, seed: int
) -> None:
    import json

    db = tmp_path / "crash.db"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(seed), json.dumps(CONFIG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(random.Random(seed).uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    asyncio.run(reopen_and_continue(db))


async def reopen_and_continue(db: Path) -> None:
    def model(request: LLMRequest) -> str:
        return "Summary." if "<transcript>" in str(request.messages[-1]["content"]) else "fine"

    session = await MnesisSession.load(
        "crash",
        db_path=str(db),
        provider=MockProvider(model),
        config=MnesisConfig.model_validate(CONFIG),
    )
    assert await session.verify() == []
    stored = await session.messages()
    assert len(stored) >= 2
    # The next open carries on: turns and compaction work on the recovered store.
    await session.send("still here?")
    await session.compact()
    assert await session.verify() == []
    assert len(await session.messages()) >= len(stored) + 2
    await session.close()
