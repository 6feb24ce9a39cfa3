"""grep's last word matches every word that begins with it.

On SQLite the store keeps the list of indexed words, and grep asks the
full-text index for the few exact words that begin with the pattern's last
word instead of a prefix (which FTS5 reads whole before it can stop at the
first page). These tests pin down that the results are the prefix's results.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mnesis import MnesisSession, MockProvider, ToolPart
from mnesis.store.sqlite.dialect import (
    LogConnection,
    SQLiteDialect,
    forget_words,
    fts_query,
    index_words,
    run,
    transaction,
)

MODEL = "openai/gpt-4o"


async def _grep(session: MnesisSession, pattern: str) -> list[str]:
    found, offset = [], 0
    while True:
        page = await session.grep(pattern, limit=100, offset=offset)
        found += [m.text for m in page]
        if page.next_offset is None:
            return found
        offset = page.next_offset


async def test_the_last_word_matches_every_word_that_begins_with_it(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        for text in (
            "deploy now",
            "the Deployment failed",
            "DEPLOYED twice",
            "deploy_v2 is tagged",
            "we redeploy on fridays",
            "nothing to see",
            "alice inside the house",
            "malice in the text",
        ):
            await s.record(text, "ok")
        assert await _grep(s, "deploy") == [
            "deploy now",
            "the Deployment failed",
            "DEPLOYED twice",
            "deploy_v2 is tagged",
        ]
        assert await _grep(s, "deploym") == ["the Deployment failed"]
        assert await _grep(s, "alice in") == ["alice inside the house"]
        assert await _grep(s, "zzz") == []


async def test_a_prefix_shared_by_more_words_than_are_expanded_finds_them_all(
    db_path: str,
) -> None:
    words = [f"tok{n:03d}" for n in range(150)]
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        for word in words:
            await s.record(f"say {word}", "ok")
        found = await _grep(s, "tok")
        assert found == [f"say {word}" for word in words]
        assert await _grep(s, "tok14") == [f"say tok14{n}" for n in range(10)]


async def test_words_with_diacritics_are_found_by_their_start(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        await s.record("Meet me at the Cafétéria", "ok")
        await s.record("Café au lait", "ok")
        await s.record("cafe racer", "ok")
        assert await _grep(s, "caf") == ["Meet me at the Cafétéria", "Café au lait", "cafe racer"]
        assert await _grep(s, "café") == ["Meet me at the Cafétéria", "Café au lait"]
        assert await _grep(s, "cafét") == ["Meet me at the Cafétéria"]


async def test_a_tool_result_stored_later_is_found_by_its_start(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        call = ToolPart(tool_name="lookup", tool_call_id="t1", input={"q": "x"})
        await s.record("look it up", [call])
        await s.record_tool_result("t1", "the quokkas live on Rottnest")
        assert await _grep(s, "quokka") == ['lookup {"q": "x"}\nthe quokkas live on Rottnest']


async def test_words_indexed_before_the_word_list_existed_are_found(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with MnesisSession.open(model=MODEL, db_path=str(db), provider=MockProvider()) as s:
        await s.record("the Cafétéria serves quokka stew", "ok")
        session_id = s.id
    # As a database of the previous schema version had it: no word list.
    conn = sqlite3.connect(db, isolation_level=None)
    version = conn.execute(
        "SELECT version FROM schema_migrations WHERE name = 'search_words'"
    ).fetchone()[0]
    conn.execute("DROP TABLE search_words")
    conn.execute("DROP TABLE search_words_epoch")
    conn.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
    conn.close()
    s = await MnesisSession.load(session_id, db_path=str(db), provider=MockProvider())
    try:
        assert await _grep(s, "quok") == ["the Cafétéria serves quokka stew"]
        assert await _grep(s, "cafe") == []  # the words as written: "Caf" then "é"
        assert await _grep(s, "caf") == ["the Cafétéria serves quokka stew"]
        assert await s.verify() == []
    finally:
        await s.close()


def test_the_word_list_splits_and_folds_as_grep_splits_a_pattern() -> None:
    assert index_words(["Deploy the deploy_v2, DEPLOY!", "Café"]) == {
        "café",
        "deploy",
        "deploy_v2",
        "the",
    }


def test_expanded_words_are_exact_alternatives_and_a_phrase_keeps_its_head() -> None:
    query = fts_query("s1", ["alice"], "in", ["in", "inside"])
    assert query == 'sid : "s1" AND body : (("alice" + "in") OR ("alice" + "inside"))'
    assert fts_query("s1", [], 'a"b', None) == 'sid : "s1" AND body : ("a""b" *)'


def _words_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, factory=LogConnection)
    conn.executescript(
        """
        CREATE VIRTUAL TABLE IF NOT EXISTS search_index USING fts5(sid, body, content = '');
        CREATE TABLE IF NOT EXISTS search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS search_words_epoch (n INTEGER NOT NULL);
        INSERT INTO search_words_epoch SELECT 0 WHERE NOT EXISTS (SELECT * FROM search_words_epoch);
        """
    )
    return conn


def test_the_words_of_a_rolled_back_write_are_written_by_the_next(tmp_path: Path) -> None:
    conn = _words_db(tmp_path / "w.db")
    dialect = SQLiteDialect()
    with pytest.raises(RuntimeError), transaction(conn):
        run(conn, dialect.index("s", [(2, "walrus tusk")]))
        raise RuntimeError("the append failed after indexing")
    assert conn.execute("SELECT word FROM search_words").fetchall() == []
    with transaction(conn):
        run(conn, dialect.index("s", [(4, "walrus tusk")]))
    with transaction(conn):  # known now: not inserted again, still there
        run(conn, dialect.index("s", [(6, "tusk")]))
    assert conn.execute("SELECT word FROM search_words").fetchall() == [("tusk",), ("walrus",)]
    conn.close()


def _erase(conn: sqlite3.Connection, key: int, text: str) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO search_index (search_index, rowid, sid, body) "
            "VALUES ('delete', ?, 's', ?)",
            (key, text),
        )
        run(conn, forget_words([text]))


def test_an_erased_body_s_words_leave_the_list_unless_another_body_holds_them(
    tmp_path: Path,
) -> None:
    conn = _words_db(tmp_path / "w.db")
    dialect = SQLiteDialect()
    with transaction(conn):
        run(conn, dialect.index("s", [(2, "secret walrus"), (4, "walrus tusk")]))
    _erase(conn, 2, "secret walrus")
    assert conn.execute("SELECT word FROM search_words").fetchall() == [("tusk",), ("walrus",)]
    conn.close()


def test_a_connection_relearns_its_words_after_another_erased_some(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer, eraser = _words_db(path), _words_db(path)
    dialect = SQLiteDialect()
    with transaction(writer):  # the writer now believes "walrus" is stored
        run(writer, dialect.index("s", [(2, "walrus")]))
    _erase(eraser, 2, "walrus")
    with transaction(writer):
        run(writer, dialect.index("s", [(4, "walrus again")]))
    assert writer.execute("SELECT word FROM search_words").fetchall() == [
        ("again",),
        ("walrus",),
    ]
    writer.close()
    eraser.close()


async def test_erasing_a_session_forgets_the_words_only_it_held(db_path: str) -> None:
    provider = MockProvider()
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=provider) as kept:
        gone = await MnesisSession.create(model=MODEL, db_path=db_path, provider=provider)
        await kept.record("the walrus is shared", "ok")
        await gone.record("my walrus password is tangerine", "noted")
        await gone.erase()
        with sqlite3.connect(db_path) as conn:
            words = {w for (w,) in conn.execute("SELECT word FROM search_words")}
        assert "tangerine" not in words and "password" not in words
        assert {"walrus", "shared", "ok"} <= words
        await kept.record("another walrus", "ok")  # this connection relearns its words
        assert await _grep(kept, "walr") == ["the walrus is shared", "another walrus"]
