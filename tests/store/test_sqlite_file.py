"""SQLite specifics: the file on disk, pragmas, migrations, sharing, where it lives."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from mnesis.errors import ConfigError, MnesisStoreError, SchemaVersionError
from mnesis.models.config import StoreConfig
from mnesis.store import SQLiteStore, acquire_store, release_store, resolve_db_url
from mnesis.store.migrations import Migration, load_migrations

MNESIS_TABLES = {"sessions", "messages", "parts", "context_items", "turns", "schema_migrations"}
LATEST = load_migrations("sqlite")[-1].version


# -- helpers (plain functions, so raw file and sqlite3 work stays out of async code) --


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    return {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def migration_rows(path: Path) -> list[tuple[Any, ...]]:
    return query(path, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")


def make_future_database(path: Path, *, journal_mode: str) -> None:
    """A database as a newer mnesis would leave it: schema version LATEST + 1."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute(
            "CREATE TABLE schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        conn.execute("CREATE TABLE future_things (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute("INSERT INTO future_things (what) VALUES ('keep me')")
        conn.executemany(
            "INSERT INTO schema_migrations VALUES (?, ?, 1.0)",
            [(v, f"m{v}") for v in range(1, LATEST + 2)],
        )
        conn.commit()
    finally:
        conn.close()


async def _write_something(store: SQLiteStore, build: Any) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("m1"), build.message("m2", role="assistant")))


# -- the file -----------------------------------------------------------------------


async def test_database_file_is_private_and_its_new_folder_too(tmp_path: Path, build: Any) -> None:
    db = tmp_path / "fresh" / "mnesis.db"
    store = await SQLiteStore(db).open()
    try:
        await _write_something(store, build)

        assert mode_of(db.parent) == 0o700
        assert mode_of(db) == 0o600
        # SQLite gives its side files the main file's permissions.
        for side in ("mnesis.db-wal", "mnesis.db-shm"):
            assert mode_of(db.parent / side) == 0o600, side
    finally:
        await store.close()


async def test_wal_mode_is_on(tmp_path: Path, build: Any) -> None:
    db = tmp_path / "wal.db"
    store = await SQLiteStore(db).open()
    try:
        await _write_something(store, build)
        assert query(db, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await store.close()


async def test_wal_mode_can_be_turned_off(tmp_path: Path, build: Any) -> None:
    db = tmp_path / "rollback.db"
    store = await SQLiteStore(db, wal_mode=False).open()
    try:
        await _write_something(store, build)
        assert query(db, "PRAGMA journal_mode") == [("delete",)]
        assert not (tmp_path / "rollback.db-wal").exists()
    finally:
        await store.close()


# -- migrations ---------------------------------------------------------------------


async def test_schema_migrations_records_versions(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = await SQLiteStore(db).open()
    try:
        assert await store.schema_version() == LATEST
    finally:
        await store.close()

    rows = migration_rows(db)
    expected = [(m.version, m.name) for m in load_migrations("sqlite")]
    assert [(v, n) for v, n, _ in rows] == expected
    assert rows[0][:2] == (1, "initial")
    assert all(isinstance(applied, float) and applied > 1_600_000_000 for *_, applied in rows)


@pytest.mark.parametrize("blank", ["missing file", "empty file"])
async def test_blank_database_migrates(tmp_path: Path, build: Any, blank: str) -> None:
    db = tmp_path / "blank.db"
    if blank == "empty file":
        db.write_bytes(b"")

    store = await SQLiteStore(db).open()
    try:
        await _write_something(store, build)
        assert [m.id for m in await store.get_messages("s1")] == ["m1", "m2"]
        assert await store.schema_version() == LATEST
    finally:
        await store.close()

    assert tables(db) >= MNESIS_TABLES


async def test_reopening_an_existing_database_does_not_rerun_migrations(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "reopen.db"
    store = await SQLiteStore(db).open()
    await _write_something(store, build)
    await store.close()
    rows_before = migration_rows(db)
    schema_cookie_before = query(db, "PRAGMA schema_version")

    for _ in range(2):
        store = await SQLiteStore(db).open()
        try:
            assert [m.id for m in await store.get_messages("s1")] == ["m1", "m2"]
            assert await store.verify() == []
        finally:
            await store.close()

    assert migration_rows(db) == rows_before  # same rows, same applied_at
    assert query(db, "PRAGMA schema_version") == schema_cookie_before  # no DDL ran


async def test_a_new_migration_is_applied_once_to_an_existing_database(
    tmp_path: Path, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "upgrade.db"
    store = await SQLiteStore(db).open()
    await _write_something(store, build)
    await store.close()
    extra = Migration(
        LATEST + 1,
        "add_note",
        "-- a later step\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
        "INSERT INTO notes (body) VALUES ('migrated');\n",
    )
    monkeypatch.setattr(
        "mnesis.store.sqlite.migrate.load_migrations",
        lambda backend: [*load_migrations(backend), extra],
    )

    for _ in range(2):
        store = await SQLiteStore(db).open()
        try:
            assert await store.schema_version() == LATEST + 1
            assert len(await store.get_messages("s1")) == 2
        finally:
            await store.close()

    assert query(db, "SELECT body FROM notes") == [("migrated",)]  # ran exactly once
    assert [r[:2] for r in migration_rows(db)][-1] == (LATEST + 1, "add_note")


async def test_a_failing_migration_leaves_nothing_half_applied(
    tmp_path: Path, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "broken.db"
    store = await SQLiteStore(db).open()
    await _write_something(store, build)
    await store.close()
    rows_before = migration_rows(db)
    broken = Migration(
        LATEST + 1,
        "broken",
        "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
    )
    monkeypatch.setattr(
        "mnesis.store.sqlite.migrate.load_migrations",
        lambda backend: [*load_migrations(backend), broken],
    )

    store = SQLiteStore(db)
    try:
        with pytest.raises(MnesisStoreError, match="no_such_table"):
            await store.open()
    finally:
        await store.close()

    assert "half" not in tables(db)
    assert migration_rows(db) == rows_before
    assert query(db, "SELECT id FROM messages ORDER BY seq") == [("m1",), ("m2",)]


async def test_newer_schema_is_refused_and_the_file_left_untouched(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "future.db"
    store = await SQLiteStore(db).open()
    await _write_something(store, build)
    await store.close()
    execute(db, "INSERT INTO schema_migrations VALUES (?, 'from_the_future', 1.0)", (LATEST + 1,))
    before = digest(db)

    store = SQLiteStore(db)
    try:
        with pytest.raises(SchemaVersionError) as err:
            await store.open()
    finally:
        await store.close()

    message = str(err.value)
    assert str(LATEST + 1) in message and str(LATEST) in message
    assert "upgrade" in message
    assert isinstance(err.value, MnesisStoreError)
    assert digest(db) == before
    assert max(v for v, *_ in migration_rows(db)) == LATEST + 1


async def test_newer_schema_in_rollback_journal_mode_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "future-rollback.db"
    make_future_database(db, journal_mode="DELETE")
    before = digest(db)

    store = SQLiteStore(db)
    try:
        with pytest.raises(SchemaVersionError):
            await store.open()
    finally:
        await store.close()

    assert query(db, "SELECT what FROM future_things") == [("keep me",)]
    assert query(db, "PRAGMA journal_mode") == [("delete",)]
    assert digest(db) == before


@pytest.mark.parametrize("kind", ["text file", "random bytes", "truncated database"])
async def test_a_file_that_is_not_a_database_gives_a_clear_store_error(
    tmp_path: Path, kind: str
) -> None:
    db = tmp_path / "notes.db"
    if kind == "text file":
        db.write_text("Shopping list:\n- milk\n- eggs\n" * 50, encoding="utf-8")
    elif kind == "random bytes":
        db.write_bytes(hashlib.sha512(b"seed").digest() * 64)
    else:
        db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 84)  # header only, garbage after
    before = digest(db)

    store = SQLiteStore(db)
    try:
        with pytest.raises(MnesisStoreError) as err:
            await store.open()
    finally:
        await store.close()

    assert not isinstance(err.value, SchemaVersionError)
    assert str(db) in str(err.value)
    assert "database" in str(err.value)
    assert isinstance(err.value.__cause__, sqlite3.DatabaseError)  # kept, not leaked
    assert digest(db) == before


async def test_a_path_that_is_a_folder_gives_a_clear_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()

    store = SQLiteStore(folder)
    try:
        with pytest.raises(MnesisStoreError) as err:
            await store.open()
    finally:
        await store.close()

    assert str(folder) in str(err.value)
    assert folder.is_dir() and not any(folder.iterdir())


# -- one store per database per process ------------------------------------------------


async def test_acquire_shares_one_store_per_path_and_closes_on_last_release(
    tmp_path: Path, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "shared.db"
    config = StoreConfig(db_path=str(db))
    spellings = [str(db), "shared.db", "./sub/../shared.db", f"sqlite:///{db}"]
    (tmp_path / "sub").mkdir()

    acquired = [await acquire_store(url, config) for url in spellings]
    other = await acquire_store(str(tmp_path / "other.db"), config)
    try:
        first = acquired[0]
        assert all(s is first for s in acquired)
        assert other is not first
        await first.create_session(build.session("s1"))

        for _ in spellings[1:]:
            await release_store(first)
            assert (await first.get_session("s1")).id == "s1"  # still open for the rest

        await release_store(first)
        with pytest.raises(MnesisStoreError, match="closed"):
            await first.get_session("s1")
        await other.create_session(build.session("o1"))  # other paths are unaffected
        assert (await other.get_session("o1")).id == "o1"

        again = await acquire_store(str(db), config)
        try:
            assert again is not first
            assert (await again.get_session("s1")).id == "s1"  # same file, data kept
        finally:
            await release_store(again)
    finally:
        await release_store(other)
    with pytest.raises(MnesisStoreError, match="closed"):
        await other.get_session("o1")


async def test_in_memory_stores_are_never_shared(build: Any) -> None:
    config = StoreConfig(db_path=":memory:")
    a = await acquire_store(":memory:", config)
    b = await acquire_store(":memory:", config)
    try:
        assert a is not b
        await a.create_session(build.session("only-in-a"))
        assert (await a.get_session("only-in-a")).id == "only-in-a"
        with pytest.raises(KeyError):
            await b.get_session("only-in-a")
    finally:
        await release_store(a)
        await release_store(b)
    with pytest.raises(MnesisStoreError):
        await a.get_session("only-in-a")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://user@localhost/db", "mysql"),
        ("sqlite://", "sqlite"),
    ],
)
async def test_acquire_refuses_unusable_urls(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        await acquire_store(url, StoreConfig(db_path="unused.db"))


# -- where the database lives -----------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "resolve-home"))
    monkeypatch.delenv("MNESIS_DB_URL", raising=False)
    return tmp_path / "resolve-home"


def test_resolve_db_url_defaults_to_the_home_folder(home: Path) -> None:
    assert resolve_db_url(None, StoreConfig()) == str(home / ".mnesis" / "sessions.db")


def test_resolve_db_url_uses_the_environment_over_the_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNESIS_DB_URL", "sqlite:////env/db.sqlite")
    assert resolve_db_url(None, StoreConfig()) == "sqlite:////env/db.sqlite"

    monkeypatch.setenv("MNESIS_DB_URL", "")  # set but empty: ignored
    assert resolve_db_url(None, StoreConfig()) == str(home / ".mnesis" / "sessions.db")


def test_resolve_db_url_explicit_config_beats_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNESIS_DB_URL", "/env/db.sqlite")
    assert resolve_db_url(None, StoreConfig(db_path="/config/db.sqlite")) == "/config/db.sqlite"
    # Explicitly set, even to the default value, still counts as explicit.
    default = str(home / ".mnesis" / "sessions.db")
    assert resolve_db_url(None, StoreConfig(db_path=default)) == default
    # Other fields set explicitly do not make db_path explicit.
    assert resolve_db_url(None, StoreConfig(wal_mode=False)) == "/env/db.sqlite"


def test_resolve_db_url_explicit_db_path_beats_everything(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNESIS_DB_URL", "/env/db.sqlite")
    config = StoreConfig(db_path="/config/db.sqlite")

    assert resolve_db_url("/arg/db.sqlite", config) == "/arg/db.sqlite"
    assert resolve_db_url(Path("/arg/path.sqlite"), config) == "/arg/path.sqlite"
    assert resolve_db_url("sqlite:////arg/url.sqlite", StoreConfig()) == (
        "sqlite:////arg/url.sqlite"
    )


def test_default_home_is_not_touched_by_resolving(home: Path) -> None:
    resolve_db_url(None, StoreConfig())
    assert not home.exists()
