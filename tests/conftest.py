"""Shared fixtures: every test gets its own HOME, so nothing touches ~/.mnesis."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pg_databases import create_pg_database, drop_pg_database, pg_url

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MNESIS_DB_URL", raising=False)
    monkeypatch.delenv("MNESIS_MOCK_LLM", raising=False)
    return home


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "sessions.db")


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``mount(folder)``: the folder bind-mounted read-only; unmounted afterwards.

    Read-only media, not file modes: root (as in CI containers) writes through
    those. Skips, saying why, where bind mounts are not allowed.
    """
    mounts: list[Path] = []

    def run(*command: str) -> str | None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            return str(exc)
        return None if done.returncode == 0 else done.stderr.strip() or f"exit {done.returncode}"

    def mount(folder: Path) -> Path:
        target = tmp_path / f"ro-{len(mounts)}"
        target.mkdir()
        failed = run("mount", "--bind", str(folder), str(target))
        if failed is None:
            failed = run("mount", "-o", "remount,ro,bind", str(target))
            if failed is not None:
                run("umount", str(target))
        if failed is not None:
            pytest.skip(f"cannot make a read-only bind mount here: {failed}")
        mounts.append(target)
        return target

    try:
        yield mount
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", str(target)], check=True)


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_url_of() -> Callable[[str], str]:
    """The test server's URL of a database by name."""
    return pg_url


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """The URL of a fresh PostgreSQL database, dropped after the test."""
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where whole sessions live, per backend: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "sessions.db")
    return str(request.getfixturevalue("pg_database"))
