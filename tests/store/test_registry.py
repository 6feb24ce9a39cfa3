"""The registry's URL helpers: what the CLI shows and what sessions store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mnesis.store
from mnesis.errors import ConfigError
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


async def test_a_read_only_opening_reads_and_changes_nothing(tmp_path: Path) -> None:
    import hashlib

    from mnesis import MnesisSession, MockProvider
    from mnesis.models.config import StoreConfig
    from mnesis.store import open_read_only

    db = tmp_path / "s.db"
    async with MnesisSession.open(model="openai/gpt-4o", db_path=str(db), provider=MockProvider()):
        pass
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    store = await open_read_only(str(db), StoreConfig())
    try:
        assert store.read_only
        assert len(await store.list_sessions()) == 1
    finally:
        await store.close()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


async def test_a_read_only_opening_creates_and_migrates_nothing(tmp_path: Path) -> None:
    import shutil

    from mnesis.errors import DatabaseNotFoundError, MnesisStoreError
    from mnesis.models.config import StoreConfig
    from mnesis.store import open_read_only

    missing = tmp_path / "missing.db"
    with pytest.raises(DatabaseNotFoundError):
        await open_read_only(str(missing), StoreConfig())
    assert not missing.exists()
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(DatabaseNotFoundError):
        await open_read_only(str(tmp_path / "empty.db"), StoreConfig())
    old = tmp_path / "old.db"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "mnesis_040" / "sessions.db", old)
    before = old.read_bytes()
    with pytest.raises(MnesisStoreError, match="mnesis migrate"):
        await open_read_only(str(old), StoreConfig())
    assert old.read_bytes() == before
    with pytest.raises(ConfigError):
        await open_read_only(":memory:", StoreConfig())
