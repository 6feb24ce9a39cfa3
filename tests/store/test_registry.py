"""The registry's URL helpers: what the CLI shows and what sessions store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mnesis.store
from mnesis.store import config_json, describe_location, is_postgres_url


def test_store_init_only_re_exports_a_sorted_all() -> None:
    assert mnesis.store.__all__ == sorted(mnesis.store.__all__)
    for name in mnesis.store.__all__:
        assert hasattr(mnesis.store, name), name


def test_a_postgres_location_never_shows_the_password() -> None:
    where, size = describe_location(" postgresql://me:hunter2@db.example:5433/mnesis ")
    assert (where, size) == ("postgresql://me@db.example:5433/mnesis", None)
    assert is_postgres_url("POSTGRES://x@y/z")


@pytest.mark.parametrize("prefix", ["", "sqlite:///"])
def test_a_sqlite_location_is_its_path_and_size(tmp_path: Path, prefix: str) -> None:
    db = tmp_path / "sessions.db"
    assert describe_location(prefix + str(db)) == (str(db), None)  # not created yet
    db.write_bytes(b"x" * 123)
    assert describe_location(prefix + str(db)) == (str(db), 123)


def test_a_home_relative_location_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert describe_location("~/m.db") == (str(tmp_path / "m.db"), None)
    assert describe_location(":memory:") == (":memory:", None)


def test_config_json_is_deterministic() -> None:
    assert config_json({"b": [1, 2], "a": {"y": 1, "x": None}}) == (
        '{"a":{"x":null,"y":1},"b":[1,2]}'
    )
