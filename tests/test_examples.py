"""Every example runs as a script, the way a user runs it, in mock mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
EXPECTED = {
    "01_basic_session.py": "Tokens used:",
    "02_long_running_agent.py": "store invariants: ok",
    "03_tool_use.py": "pruned: True",
    "04_large_files.py": "schema: {orders: [20,000 × {id: number, total: number",
    "05_parallel_processing.py": "the parent's own context holds none of it: True",
    "06_byo_llm.py": "assistant: I see 6 messages of context.",
    "07_streaming.py": "after breaking out early: 4 messages stored",
    "08_recall.py": "expand -> 'The staging password is tangerine-42.'",
    "09_local_model.py": "no OpenAI-compatible server",
    "10_openai_agents.py": "and the log still has turn 1: True",
    "11_pydantic_ai.py": "grep finds run 1: True",
    "12_mcp_server.py": "lcm_expand -> The staging password is tangerine-42.",
}


def run(script: Path, home: Path, *args: str) -> str:
    env = {
        **os.environ,
        "MNESIS_MOCK_LLM": "1",
        "HOME": str(home),
        "MNESIS_LOCAL_URL": "http://127.0.0.1:9/v1",
    }
    env.pop("MNESIS_DB_URL", None)
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_checked() -> None:
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    assert EXPECTED[script.name] in run(script, tmp_path)


def test_long_session_demo_resumes_with_everything(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = run(
        ROOT / "examples" / "02_long_running_agent.py", tmp_path, "--turns", "120", "--db", str(db)
    )
    assert "resumed: 240 messages in the log, 240 chat messages in context" in out
    assert db.exists()
