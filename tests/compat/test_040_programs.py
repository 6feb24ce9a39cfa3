"""Programs written the way mnesis 0.4.0's documentation writes them run unchanged.

Each file in ``programs/`` exercises the calls one of 0.4.0's published
examples makes (our own programs, not copies). They run in a subprocess with
the mock model, as a user would run them. With ``MNESIS_REF040_PYTHON`` set to
a Python that has ``mnesis==0.4.0`` installed, each also runs against it, to
show the program means the same there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = sorted((Path(__file__).parent / "programs").glob("*.py"))
REFERENCE_PYTHON = os.environ.get("MNESIS_REF040_PYTHON")


def run(python: str, program: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    target = tmp_path if program.stem == "parallel_processing" else tmp_path / "sessions.db"
    env = {**os.environ, "MNESIS_MOCK_LLM": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [python, str(program), str(target)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_runs_against_ours(program: Path, tmp_path: Path) -> None:
    done = run(sys.executable, program, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("ok")


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_runs_against_reference(program: Path, tmp_path: Path) -> None:
    # The programs are only evidence if the published package runs them too; CI
    # (.ci/run) installs it in a Python 3.12 venv and must not skip this.
    if REFERENCE_PYTHON is None:
        reason = "set MNESIS_REF040_PYTHON to a Python with mnesis==0.4.0 installed"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    done = run(REFERENCE_PYTHON, program, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("ok")
