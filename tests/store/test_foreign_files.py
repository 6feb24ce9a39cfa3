"""Files that are not ours, files that are not there, files that cannot be written.

Another application's SQLite file is recognised read-only and refused
byte-identical (a mnesis 0.4.0 one is migrated, or left byte-identical when it
cannot be); reading never creates a database; a database on read-only media is
read as it is.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from mnesis import MnesisSession, MockProvider
from mnesis.errors import (
    ConfigError,
    DatabaseNotFoundError,
    ForeignDatabaseError,
    LegacyMigrationError,
    MnesisStoreError,
    SessionNotFoundError,
)
from mnesis.store import SQLiteStore
from mnesis.store.migrations import load_migrations

LATEST = load_migrations("sqlite")[-1].version

# The tables of a mnesis 0.4.0 file, as its schema.sql made them (columns trimmed).
MNESIS_040 = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, parent_id TEXT, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, model_id TEXT NOT NULL DEFAULT '', provider_id TEXT NOT NULL
    DEFAULT '', agent TEXT NOT NULL DEFAULT 'default', title TEXT, is_active INTEGER NOT NULL
    DEFAULT 1, metadata TEXT, system_prompt TEXT NOT NULL DEFAULT '');
CREATE TABLE messages (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL,
    created_at INTEGER NOT NULL, is_summary INTEGER NOT NULL DEFAULT 0);
CREATE TABLE message_parts (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT
    NOT NULL, part_type TEXT NOT NULL, part_index INTEGER NOT NULL DEFAULT 0, content TEXT);
CREATE TABLE file_references (content_id TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE summary_nodes (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, content TEXT);
CREATE TABLE context_items (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,
    item_type TEXT NOT NULL, item_id TEXT NOT NULL, position INTEGER NOT NULL,
    created_at TEXT NOT NULL);
INSERT INTO sessions (id, created_at, updated_at, model_id) VALUES ('old', 1, 1, 'gpt-4o');
"""

OTHER_APPS = {
    "a notes app": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
    "INSERT INTO notes (body) VALUES ('keep me');",
    "a Rails app": "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY);"
    "INSERT INTO schema_migrations VALUES ('20240101000000');"
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
    "an app with a sessions table": "CREATE TABLE sessions (id TEXT PRIMARY KEY, data BLOB);",
    "an empty app with its id": "PRAGMA application_id = 1234;",
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_database(path: Path, script: str, *, journal_mode: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


async def open_refused(path: Path, error: type[Exception] = ForeignDatabaseError) -> str:
    store = SQLiteStore(path)
    try:
        with pytest.raises(error) as err:
            await store.open()
    finally:
        await store.close()
    assert isinstance(err.value, MnesisStoreError)
    assert "\n" not in str(err.value)
    return str(err.value)


# -- foreign files ------------------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
@pytest.mark.parametrize("app", sorted(OTHER_APPS))
async def test_another_applications_file_is_refused_byte_identical(
    tmp_path: Path, app: str, journal_mode: str
) -> None:
    db = tmp_path / "theirs.db"
    make_database(db, OTHER_APPS[app], journal_mode=journal_mode)
    before, their_tables = digest(db), tables(db)

    message = await open_refused(db)

    assert str(db) in message and "not a mnesis" in message and "untouched" in message
    assert digest(db) == before
    assert tables(db) == their_tables
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == (journal_mode.lower(),)
    finally:
        conn.close()


async def test_a_mnesis_040_database_it_cannot_migrate_is_left_untouched_and_named(
    tmp_path: Path,
) -> None:
    # 0.4.0's tables, but not the columns it wrote: migrating it (see
    # test_migrate_040.py for real 0.4.0 files) fails and changes nothing.
    db = tmp_path / "old.db"
    make_database(db, MNESIS_040, journal_mode="WAL")
    before = digest(db)

    message = await open_refused(db, LegacyMigrationError)
    with pytest.raises(LegacyMigrationError, match=r"0\.4\.0"):
        await MnesisSession.load("old", db_path=str(db))
    with pytest.raises(LegacyMigrationError, match=r"0\.4\.0"):
        await MnesisSession.create(model="gpt-4o", db_path=str(db), provider=MockProvider())

    assert "mnesis 0.4.0" in message and "untouched" in message and "lacks" in message
    assert digest(db) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("old.db.")]  # no backup
    assert "schema_migrations" not in tables(db)


@pytest.mark.parametrize("kind", ["no bytes", "an SQLite file without tables"])
async def test_an_empty_file_becomes_a_mnesis_database(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "empty.db"
    if kind == "no bytes":
        db.touch()
    else:
        make_database(db, "", journal_mode="DELETE")

    store = await SQLiteStore(db).open()
    await store.close()

    assert "schema_migrations" in tables(db) and "messages" in tables(db)


# -- reading never creates ----------------------------------------------------------


async def test_reading_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "sessions.db"

    assert await MnesisSession.list_sessions(db_path=str(db)) == []  # nothing stored yet
    with pytest.raises(DatabaseNotFoundError, match="does not exist") as err:
        await MnesisSession.load("sess_x", db_path=str(db))
    with pytest.raises(SessionNotFoundError):  # "load, else create" code keeps working
        await MnesisSession.load("sess_x", db_path=str(db))
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(DatabaseNotFoundError, match="empty"):
        await MnesisSession.load("sess_x", db_path=str(empty))

    assert str(db) in str(err.value)
    assert not (tmp_path / "no").exists()
    assert empty.read_bytes() == b""


# -- read-only media ----------------------------------------------------------------


async def _stored_session(db: Path) -> str:
    session = await MnesisSession.create(
        model="gpt-4o", db_path=str(db), provider=MockProvider(lambda r: "the answer is 42")
    )
    async with session:
        await session.send("what is the answer?")
    return session.id


async def test_a_database_on_read_only_media_is_read_as_it_is(
    tmp_path: Path, read_only_mount: Callable[[Path], Path]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    session_id = await _stored_session(folder / "sessions.db")
    before = digest(folder / "sessions.db")
    db = read_only_mount(folder) / "sessions.db"
    assert not os.access(db, os.W_OK)

    (info,) = await MnesisSession.list_sessions(db_path=str(db))
    async with await MnesisSession.load(session_id, db_path=str(db)) as session:
        assert [m.text_content() for m in await session.messages()] == [
            "what is the answer?",
            "the answer is 42",
        ]
        assert (await session.grep("answer")).matches
        assert await session.verify() == []
        with pytest.raises(MnesisStoreError, match="read-only"):
            await session.record("write", "this")

    assert info.id == session_id
    assert digest(folder / "sessions.db") == before
    assert sorted(os.listdir(folder)) == ["sessions.db"]


async def test_read_only_media_needing_a_migration_is_refused(
    tmp_path: Path, read_only_mount: Callable[[Path], Path]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    await _stored_session(folder / "sessions.db")
    conn = sqlite3.connect(folder / "sessions.db")
    conn.execute("DELETE FROM schema_migrations WHERE version = ?", (LATEST,))
    conn.commit()
    conn.close()
    db = read_only_mount(folder) / "sessions.db"

    message = await open_refused(db, MnesisStoreError)

    assert "read-only" in message and "write access" in message


async def test_creating_a_database_in_a_read_only_folder_is_a_store_error(
    tmp_path: Path, read_only_mount: Callable[[Path], Path]
) -> None:
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    folder = read_only_mount(empty)

    for db in (folder / "sessions.db", folder / "sub" / "sessions.db"):
        with pytest.raises(MnesisStoreError, match="cannot create database file") as err:
            await MnesisSession.create(model="gpt-4o", db_path=str(db), provider=MockProvider())
        assert "Read-only file system" in str(err.value) and "\n" not in str(err.value)


def test_a_nul_in_the_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NUL"):
        SQLiteStore("bad\0name.db")
