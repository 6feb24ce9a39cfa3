"""Operator runs: JSONL in and out, and resuming a killed run without redoing work."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from mnesis import AgenticMap, LLMMap, MockProvider
from mnesis.errors import InvalidInputError, LLMTransientError
from mnesis.llm.base import LLMRequest

MODEL = "openai/gpt-4o"


class Doubled(BaseModel):
    value: int


def doubling(request: LLMRequest) -> str:
    number = int(str(request.messages[-1]["content"]).split("|")[0])
    return json.dumps({"value": number * 2})


async def test_jsonl_inputs_and_outputs(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(50)) + "\n")
    target = tmp_path / "out.jsonl"
    op = LLMMap(model=MODEL, provider=MockProvider(doubling))
    batch = await op.run_all(source, "{{ item.n }}|", Doubled, output_path=target, concurrency=5)
    assert [r.output.value for r in batch.results] == [i * 2 for i in range(50)]
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(50))
    assert rows[7]["input"] == {"n": 7} and rows[7]["output"] == {"value": 14}


async def test_bad_inputs_fail_up_front(tmp_path: Path) -> None:
    op = LLMMap(model=MODEL, provider=MockProvider(doubling))
    with pytest.raises(InvalidInputError, match="empty"):
        await op.run_all([], "{{ item }}|", Doubled)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"n": 1}\n{nope\n')
    with pytest.raises(InvalidInputError, match=r"broken\.jsonl:2 is not valid JSON"):
        await op.run_all(broken, "{{ item.n }}|", Doubled)
    with pytest.raises(InvalidInputError, match="not found"):
        await op.run_all(tmp_path / "missing.jsonl", "{{ item.n }}|", Doubled)
    with pytest.raises(InvalidInputError, match="empty"):
        await AgenticMap(model=MODEL, provider=MockProvider()).run_all([], "{{ item }}")


async def test_a_run_id_cannot_be_reused_for_other_work(db_path: str) -> None:
    op = LLMMap(model=MODEL, provider=MockProvider(doubling))
    await op.run_all([1, 2], "{{ item }}|", Doubled, run_id="r1", db_path=db_path)
    with pytest.raises(InvalidInputError, match="different work"):
        await op.run_all([1, 2], "number {{ item }}|", Doubled, run_id="r1", db_path=db_path)
    with pytest.raises(InvalidInputError, match="different work"):
        await op.run_all([1, 3], "{{ item }}|", Doubled, run_id="r1", db_path=db_path)
    again = await op.run_all([1, 2], "{{ item }}|", Doubled, run_id="r1", db_path=db_path)
    assert [r.output.value for r in again.results] == [2, 4]  # from the store


CHILD = r"""
import asyncio, json, sys
from pydantic import BaseModel
from mnesis import LLMMap, MockProvider

class Doubled(BaseModel):
    value: int

async def model(request):
    await asyncio.sleep(0.02)
    number = int(str(request.messages[-1]["content"]).split("|")[0])
    return json.dumps({"value": number * 2})

async def main():
    op = LLMMap(model="openai/gpt-4o", provider=MockProvider(model))
    print("ready", flush=True)
    async for result in op.run(range(400), "{{ item }}|", Doubled, run_id="big",
                               db_path=sys.argv[1], concurrency=4):
        pass

asyncio.run(main())
"""


def test_a_killed_run_resumes_without_processing_any_item_twice(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.8)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    statuses = dict(
        sqlite3.connect(db)
        .execute("SELECT idx, status FROM map_items WHERE run_id = 'big'")
        .fetchall()
    )
    done_before = {i for i, s in statuses.items() if s == "done"}
    assert 0 < len(done_before) < 400

    seen: list[int] = []

    def model(request: LLMRequest) -> str:
        number = int(str(request.messages[-1]["content"]).split("|")[0])
        seen.append(number)
        return json.dumps({"value": number * 2})

    async def resume() -> list[int]:
        op = LLMMap(model=MODEL, provider=MockProvider(model))
        batch = await op.run_all(
            range(400),
            "{{ item }}|",
            Doubled,
            run_id="big",
            db_path=str(db),
            output_path=tmp_path / "out.jsonl",
        )
        return [r.output.value for r in batch.results]

    values = asyncio.run(resume())
    assert not set(seen) & done_before  # nothing finished was processed again
    assert sorted(seen) == sorted(set(range(400)) - done_before)
    assert values == [i * 2 for i in range(400)]
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(400))


async def test_agentic_map_runs_resume_and_write_jsonl(tmp_path: Path, db_path: str) -> None:
    calls: list[str] = []

    def agent(request: LLMRequest) -> str:
        task = str(request.messages[-1]["content"])
        calls.append(task)
        if task == "task 2" and len(calls) < 4:
            raise LLMTransientError("flaky")
        return f"did {task}"

    op = AgenticMap(model=MODEL, provider=MockProvider(agent))
    first = await op.run_all(range(4), "task {{ item }}", run_id="agents", db_path=db_path)
    assert [r.success for r in first.results] == [True, True, False, True]
    calls.clear()
    out = tmp_path / "agents.jsonl"
    again = await op.run_all(
        range(4), "task {{ item }}", run_id="agents", db_path=db_path, output_path=out
    )
    assert calls == []  # finished items (failed ones included) are not run again
    assert [r.output_text for r in again.results][:2] == ["did task 0", "did task 1"]
    assert len(out.read_text().splitlines()) == 4
