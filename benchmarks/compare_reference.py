#!/usr/bin/env python3
"""mnesis (this repo) against the published mnesis 0.4.0, same workload, side by side.

The published package needs Python >= 3.12; it is installed into its own
virtual environment (``benchmarks/.refvenv``, created on first use from the
first ``python3.12``/``python3.13`` found, or ``--ref-python``). Both sides run
the same workload: 150-word messages, the mock model, no compaction, a fresh
SQLite file (see ``overhead.py`` and ``reference_workload.py``).

    python benchmarks/compare_reference.py [--turns 1000] [--send-turns 200]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REF_VENV = HERE / ".refvenv"
REF_VERSION = "mnesis==0.4.0"


def find_python312() -> str:
    candidates = [shutil.which("python3.13"), shutil.which("python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[23].*/bin/python3")))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("no Python >= 3.12 found for the reference package; pass --ref-python")


def reference_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {REF_VENV} with {REF_VERSION} ...", file=sys.stderr)
        subprocess.run([find_python312(), "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", REF_VERSION], check=True)
    return str(python)


def run_json(command: list[str]) -> dict[str, Any]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--send-turns", type=int, default=200)
    parser.add_argument("--ref-python", default=None)
    args = parser.parse_args()
    workload = ["--turns", str(args.turns), "--send-turns", str(args.send_turns)]

    print("running this repo's mnesis ...", file=sys.stderr)
    ours = run_json([sys.executable, str(HERE / "overhead.py"), "--json", *workload])
    print("running the published mnesis 0.4.0 (several minutes) ...", file=sys.stderr)
    ref = run_json(
        [reference_python(args.ref_python), str(HERE / "reference_workload.py"), *workload]
    )

    n, s = args.turns, args.send_turns
    rows = [
        ("send() per turn, turn 10 (ms)", "send_ms_turn10", False),
        (f"send() per turn, turn {s} (ms)", "send_ms_turnN", False),
        ("record() per turn, turn 10 (ms)", "record_ms_turn10", False),
        (f"record() per turn, turn {n} (ms)", "record_ms_turnN", False),
        (f"record() turns/s over {n} turns", "record_turns_per_s", True),
        (f"load() + context_for_next_turn(), {n} turns (ms)", "load_context_ms", False),
    ]
    print("| measure | mnesis 0.4.0 | this repo | speed-up |\n|---|---:|---:|---:|")
    for label, key, higher_is_better in rows:
        theirs, mine = float(ref[key]), float(ours[key])
        ratio = mine / theirs if higher_is_better else theirs / mine
        print(f"| {label} | {theirs:,.2f} | {mine:,.2f} | {ratio:,.0f}x |")


if __name__ == "__main__":
    main()
