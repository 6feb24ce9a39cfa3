"""The benchmark scripts still run (tiny sizes; the numbers are not checked)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout


def test_overhead_benchmark_runs() -> None:
    out = json.loads(
        run(
            str(BENCH / "overhead.py"),
            "--turns",
            "20",
            "--repeat",
            "1",
            "--load-reps",
            "1",
            "--json",
        )
    )
    assert out["turns"] == 20 and out["record_turns_per_s"] > 0


def test_compaction_benchmark_runs() -> None:
    out = run(str(BENCH / "compaction.py"), "--turns", "120", "--pass-tokens", "8000")
    assert "prefix" in out and "level" in out


def test_operators_benchmark_runs() -> None:
    out = run(str(BENCH / "operators.py"), "--items", "200", "--json-rows", "1000")
    assert "peak concurrent calls at concurrency=8 (2 ms calls) | 8 |" in out


def test_backends_benchmark_runs() -> None:
    out = run(
        str(BENCH / "backends.py"),
        "--appends",
        "20",
        "--shared-turns",
        "5",
        "--grep-messages",
        "1000",
        "--queries",
        "10",
    )
    assert "PostgreSQL (local)" in out and "SQLite (file, WAL)" in out
    assert "| SQLite (file, WAL) | 8 |" in out and "| PostgreSQL (local) | 8 |" in out
    shared = re.findall(r"\| (\d+) \| (yes|NO) \|$", out, re.MULTILINE)
    assert shared == [("0", "yes")] * 6  # no turn raised, every turn stored whole


def test_soak_benchmark_runs() -> None:
    out = run(str(BENCH / "soak.py"), "--turns", "300", "--block", "100", "--window", "12000")
    assert "RSS before the first turn" in out and "verify(): clean" in out
    assert "| 201–300 |" in out


def test_limits_benchmark_runs() -> None:
    out = json.loads(run(str(BENCH / "limits.py"), "--quick", "--only", "sqlite,send", "--json"))
    sqlite, send = out["sections"]["sqlite"]["rows"], out["sections"]["send"]["rows"]
    assert [r["unit"] for r in sqlite] == ["turns/s", "turns/s", "ratio"]
    assert all(r["value"] > 0 for r in sqlite + send)
    assert send[0]["target"] == "≤ 0.25 ms"
