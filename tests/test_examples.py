"""The examples run as scripts, the way a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_long_session_demo_runs_and_resumes(tmp_path: Path) -> None:
    env = {**os.environ, "MNESIS_MOCK_LLM": "1", "HOME": str(tmp_path)}
    db = tmp_path / "demo.db"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "long_session.py"),
            "--turns",
            "120",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "resumed: 240 messages in the log, 241 chat messages in context" in out
    assert "store invariants: ok" in out
    assert db.exists()
