"""Databases written by the real mnesis 0.4.0, migrated in place when ours opens them.

The fixtures under ``tests/fixtures/mnesis_040`` were written by the published
package (``tests/fixtures/make_040_databases.py``); every check here compares
the migrated file with what the 0.4.0 file holds, read with plain sqlite3.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mnesis import MnesisSession, MockProvider
from mnesis.errors import LegacyMigrationError, MnesisStoreError
from mnesis.store import SQLiteStore, migrate_040
from mnesis.store.sqlite.mnesis040 import write as migration_write

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mnesis_040"
SHOWN = ("text", "reasoning", "tool", "file_ref")  # the part types 0.4.0 showed the model

pytestmark = pytest.mark.filterwarnings("ignore:mnesis. model")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_fixture(tmp_path: Path, name: str = "sessions.db") -> Path:
    target = tmp_path / "data" / "sessions.db"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(FIXTURES / name, target)
    return target


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    # The committed fixtures are read as immutable: no -wal/-shm files beside them.
    mode = "ro&immutable=1" if path.parent == FIXTURES else "ro"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def open_and_close(path: Path) -> None:
    store = SQLiteStore(path)
    try:
        await store.open()
    finally:
        await store.close()


def old_session_ids() -> list[str]:
    return [r[0] for r in rows(FIXTURES / "sessions.db", "SELECT id FROM sessions")]


def the_compacted_session() -> str:
    (sid,) = rows(FIXTURES / "sessions.db", "SELECT DISTINCT session_id FROM summary_nodes")[0]
    return str(sid)


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    db = copy_fixture(tmp_path)
    asyncio.run(open_and_close(db))
    return db


# -- what carries over ---------------------------------------------------------------


def test_sessions_carry_over_with_their_settings_and_totals(migrated: Path) -> None:
    old = FIXTURES / "sessions.db"
    theirs = rows(
        old,
        "SELECT s.id, s.parent_id, s.agent, s.model_id, s.system_prompt, s.created_at, "
        "SUM(m.tokens_input), SUM(m.tokens_output), SUM(m.tokens_cache_read), "
        "SUM(m.tokens_cache_write), SUM(m.tokens_total), SUM(m.cost) FROM sessions s "
        "JOIN messages m ON m.session_id = s.id AND m.is_summary = 0 GROUP BY s.id ORDER BY s.id",
    )
    ours = rows(
        migrated,
        "SELECT id, parent_id, agent, model, system_prompt, created_at, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, cost "
        "FROM sessions ORDER BY id",
    )
    assert len(ours) == len(theirs) == 4
    for t, o in zip(theirs, ours, strict=True):
        assert o[:5] == t[:5]
        assert o[5] == pytest.approx(t[5] / 1000)
        assert o[6:11] == t[6:11]
        assert o[11] == pytest.approx(t[11])
    assert any(t[1] is not None for t in theirs)  # the sub-session keeps its parent
    assert any(t[11] > 0 for t in theirs)  # and the cost 0.4.0 kept


def test_every_message_carries_over_in_order_with_its_usage(migrated: Path) -> None:
    old = FIXTURES / "sessions.db"
    for sid in old_session_ids():
        theirs = rows(
            old,
            "SELECT id, role, created_at, tokens_input, tokens_output, tokens_cache_read, "
            "tokens_cache_write, tokens_total, cost, finish_reason FROM messages "
            "WHERE session_id = ? AND is_summary = 0 ORDER BY created_at, rowid",
            sid,
        )
        ours = rows(
            migrated,
            "SELECT id, role, created_at, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, total_tokens, cost, finish_reason, seq, status FROM messages "
            "WHERE session_id = ? ORDER BY seq",
            sid,
        )
        assert [o[0] for o in ours] == [t[0] for t in theirs]
        assert [o[10] for o in ours] == list(range(1, len(ours) + 1))
        for t, o in zip(theirs, ours, strict=True):
            assert o[1] == t[1] and o[2] == pytest.approx(t[2] / 1000)
            assert o[3:8] == t[3:8] and o[8] == pytest.approx(t[8]) and o[9] == t[9]
            assert o[11] == "complete"


def test_every_part_carries_over_with_tool_results_errors_and_file_refs(migrated: Path) -> None:
    old = FIXTURES / "sessions.db"
    theirs = rows(
        old,
        "SELECT p.message_id, p.part_type, p.content, p.tool_state, p.compacted_at "
        "FROM message_parts p JOIN messages m ON m.id = p.message_id WHERE m.is_summary = 0 "
        "ORDER BY p.message_id, p.part_index",
    )
    shown = [t for t in theirs if t[1] in SHOWN]
    ours = rows(
        migrated,
        "SELECT message_id, type, data, tool_status, tool_output, tool_error, pruned_at "
        "FROM parts ORDER BY message_id, idx",
    )
    assert len(ours) == len(shown)
    for t, o in zip(shown, ours, strict=True):
        old_part, data = json.loads(t[2]), json.loads(o[2])
        assert o[0] == t[0]
        if t[1] in ("text", "reasoning"):
            assert (o[1], data["text"]) == ("text", old_part["text"])
        elif t[1] == "file_ref":
            assert o[1] == "file_ref"
            assert {k: data[k] for k in old_part if k != "type"} == {
                k: v for k, v in old_part.items() if k != "type"
            }
        else:
            assert o[1] == "tool"
            assert (data["tool_name"], data["tool_call_id"], data["input"]) == (
                old_part["tool_name"],
                old_part["tool_call_id"],
                old_part["input"],
            )
            assert (o[4], o[5]) == (old_part["output"], old_part["error_message"])
            assert o[3] == t[3]
            assert (o[6] is not None) == (t[4] is not None)
    states = {o[3] for o in ours if o[1] == "tool"}
    assert {"completed", "error", "running"} <= states
    assert any(o[6] is not None for o in ours)  # pruned outputs stay pruned


def test_parts_0_4_0_never_showed_stay_in_its_tables(migrated: Path) -> None:
    unshown = rows(
        FIXTURES / "sessions.db",
        "SELECT id, content FROM message_parts WHERE part_type IN ('step_start', 'step_finish')",
    )
    assert len(unshown) == 2
    kept = rows(
        migrated,
        "SELECT id, content FROM mnesis040_message_parts WHERE part_type IN "
        "('step_start', 'step_finish')",
    )
    assert sorted(kept) == sorted(unshown)
    assert rows(FIXTURES / "sessions.db", "SELECT * FROM sessions ORDER BY id") == rows(
        migrated, "SELECT * FROM mnesis040_sessions ORDER BY id"
    )
    assert rows(FIXTURES / "sessions.db", "SELECT * FROM messages ORDER BY id") == rows(
        migrated, "SELECT * FROM mnesis040_messages ORDER BY id"
    )


def test_summaries_become_our_dag_over_the_messages_they_cover(migrated: Path) -> None:
    old = FIXTURES / "sessions.db"
    sid = the_compacted_session()
    nodes = rows(
        old,
        "SELECT id, kind, span_start_message_id, span_end_message_id, parent_node_ids "
        "FROM summary_nodes WHERE session_id = ?",
        sid,
    )
    assert {n[1] for n in nodes} == {"leaf", "condensed"}
    seq = dict(rows(migrated, "SELECT id, seq FROM messages WHERE session_id = ?", sid))
    texts = dict(
        rows(
            old,
            "SELECT p.message_id, json_extract(p.content, '$.text') FROM message_parts p "
            "JOIN messages m ON m.id = p.message_id WHERE m.is_summary = 1 "
            "AND p.part_type = 'text'",
        )
    )
    for node_id, kind, start, end, merged in nodes:
        (ours,) = rows(
            migrated, "SELECT kind, text, first_seq, last_seq FROM summaries WHERE id = ?", node_id
        )
        sources = rows(
            migrated,
            "SELECT source_kind, source_id FROM summary_sources WHERE summary_id = ? ORDER BY ord",
            node_id,
        )
        assert ours[0] == kind and ours[1] == texts[node_id]
        assert (ours[2], ours[3]) == (seq[start], seq[end])
        if kind == "leaf":
            assert [s[1] for s in sources] == [
                m for m, n in sorted(seq.items(), key=lambda i: i[1]) if seq[start] <= n <= seq[end]
            ]
        else:
            assert {s[1] for s in sources} == set(json.loads(merged))


def test_the_context_view_is_what_0_4_0_had(migrated: Path) -> None:
    for sid in old_session_ids():
        theirs = rows(
            FIXTURES / "sessions.db",
            "SELECT item_type, item_id FROM context_items WHERE session_id = ? ORDER BY position",
            sid,
        )
        ours = rows(
            migrated,
            "SELECT kind, ref_id FROM context_items WHERE session_id = ? ORDER BY position",
            sid,
        )
        assert ours == theirs


def test_file_references_carry_over(migrated: Path) -> None:
    theirs = rows(
        FIXTURES / "sessions.db",
        "SELECT content_id, path, file_type, token_count, exploration_summary FROM file_references",
    )
    ours = rows(
        migrated,
        "SELECT content_id, path, file_type, token_count, exploration_summary FROM file_refs",
    )
    assert ours == theirs and theirs[0][3] > 10_000


# -- the migrated sessions work ------------------------------------------------------


async def test_verify_is_clean_and_every_session_loads_and_carries_on(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    sessions = await MnesisSession.list_sessions(db_path=str(db))
    assert sorted(s.id for s in sessions) == sorted(old_session_ids())
    for info in sessions:
        async with await MnesisSession.load(
            info.id, db_path=str(db), provider=MockProvider()
        ) as session:
            assert await session.verify() == []
            context = await conversation(session)
            assert context and context[0]["role"] == "user"
            before = len(await session.messages())
            reply = await session.send("Where were we?")
            assert reply.text and len(await session.messages()) == before + 2
            assert await session.verify() == []


async def conversation(session: MnesisSession) -> list[dict[str, Any]]:
    """The context the next request carries, without the system prompt."""
    return [m for m in await session.context_for_next_turn() if m["role"] != "system"]


async def test_a_compacted_session_shows_summaries_and_expands_to_the_originals(
    tmp_path: Path,
) -> None:
    db = copy_fixture(tmp_path)
    sid = the_compacted_session()
    async with await MnesisSession.load(sid, db_path=str(db), provider=MockProvider()) as session:
        context = await conversation(session)
        (condensed,) = rows(db, "SELECT id, message_count FROM summaries WHERE kind = 'condensed'")
        assert condensed[0] in str(context[0]["content"])
        expanded = await session.expand(condensed[0])
        assert expanded.total == condensed[1]
        first_day = expanded.messages[0].text_content()
        assert first_day.startswith("Day 1:")


async def test_an_empty_0_4_0_database_becomes_an_empty_one_of_ours(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path, "empty.db")
    assert await MnesisSession.list_sessions(db_path=str(db)) == []
    async with await MnesisSession.create(
        model="gpt-4o", db_path=str(db), provider=MockProvider()
    ) as session:
        await session.send("hello")
        assert await session.verify() == []


async def test_rows_0_4_0_had_lost_track_of_are_reported_not_dropped(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    sid = the_compacted_session()
    conn = sqlite3.connect(db)
    # A message 0.4.0's view had lost (in neither the view nor a summary) ...
    (lost,) = conn.execute(
        "SELECT item_id FROM context_items WHERE session_id = ? AND item_type = 'message' "
        "ORDER BY position LIMIT 1",
        (sid,),
    ).fetchone()
    conn.execute("DELETE FROM context_items WHERE item_id = ?", (lost,))
    # ... and a summary node nothing reaches.
    conn.execute(
        "INSERT INTO summary_nodes (id, session_id, span_start_message_id, "
        "span_end_message_id, content, token_count, created_at, kind) "
        "VALUES ('msg_stray', ?, 'msg_x', 'msg_y', 'a stray summary', 3, 1, 'leaf')",
        (sid,),
    )
    conn.commit()
    conn.close()

    report = await migrate_040(db)

    assert (report.restored_messages, report.orphan_summaries) == (1, 1)
    assert rows(db, "SELECT kind FROM context_items WHERE ref_id = ?", lost) == [("message",)]
    assert rows(db, "SELECT count(*) FROM summaries WHERE id = 'msg_stray'") == [(0,)]
    assert rows(db, "SELECT content FROM mnesis040_summary_nodes WHERE id = 'msg_stray'") == [
        ("a stray summary",)
    ]
    async with await MnesisSession.load(sid, db_path=str(db), provider=MockProvider()) as session:
        assert await session.verify() == []


# -- safety: backup, atomicity, once only ---------------------------------------------


async def test_the_backup_is_the_original_byte_for_byte(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    before = digest(db)
    await open_and_close(db)
    backup = db.with_name("sessions.db.0.4.0-backup")
    assert digest(backup) == before == digest(FIXTURES / "sessions.db")
    assert backup.stat().st_mode & 0o777 == 0o600


async def test_an_existing_backup_is_never_overwritten(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    taken = db.with_name("sessions.db.0.4.0-backup")
    taken.write_text("someone else's")
    report = await migrate_040(db)
    assert taken.read_text() == "someone else's"
    assert report.backup == f"{taken}.1"
    assert digest(Path(report.backup)) == digest(FIXTURES / "sessions.db")


async def test_reopening_a_migrated_file_does_not_migrate_again(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    await open_and_close(db)
    counts = rows(db, "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM summaries)")
    await open_and_close(db)
    report = await migrate_040(db)
    assert not report.migrated
    assert rows(db, "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM summaries)") == (
        counts
    )
    assert sorted(p.name for p in db.parent.iterdir() if "backup" in p.name) == [
        "sessions.db.0.4.0-backup"
    ]


async def test_two_stores_opening_it_at_once_migrate_it_once(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    await asyncio.gather(open_and_close(db), open_and_close(db))
    assert sorted(p.name for p in db.parent.iterdir() if "backup" in p.name) == [
        "sessions.db.0.4.0-backup"
    ]
    assert rows(db, "SELECT count(*) FROM sessions") == [(4,)]


def _bad_json_part(conn: sqlite3.Connection) -> str:
    (part_id,) = conn.execute(
        "SELECT id FROM message_parts WHERE part_type = 'tool' LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE message_parts SET content = '{broken' WHERE id = ?", (part_id,))
    return str(part_id)


def _span_outside_the_session(conn: sqlite3.Connection) -> str:
    conn.execute("UPDATE summary_nodes SET span_end_message_id = 'msg_nowhere' WHERE kind = 'leaf'")
    return "msg_nowhere"


def _view_of_a_missing_message(conn: sqlite3.Connection) -> str:
    conn.execute(
        "UPDATE context_items SET item_id = 'msg_gone' WHERE id = (SELECT MAX(id) FROM "
        "context_items WHERE item_type = 'message')"
    )
    return "msg_gone"


@pytest.mark.parametrize(
    "corrupt", [_bad_json_part, _span_outside_the_session, _view_of_a_missing_message]
)
async def test_a_failed_migration_leaves_the_file_byte_identical(
    tmp_path: Path, corrupt: Callable[[sqlite3.Connection], str]
) -> None:
    db = copy_fixture(tmp_path)
    conn = sqlite3.connect(db)
    named = corrupt(conn)
    conn.commit()
    conn.close()
    before, files = digest(db), sorted(db.parent.iterdir())

    for attempt in (open_and_close(db), migrate_040(db), MnesisSession.list_sessions(str(db))):
        with pytest.raises(LegacyMigrationError) as err:
            await attempt
        message = str(err.value)
        assert "\n" not in message and "0.4.0" in message and "untouched" in message
        assert named in message
        assert digest(db) == before and sorted(db.parent.iterdir()) == files


async def test_a_backup_that_cannot_be_written_stops_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = copy_fixture(tmp_path)
    before = digest(db)

    def disk_full(source: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(migration_write, "_copy_exclusive", disk_full)
    with pytest.raises(LegacyMigrationError, match=r"backup.*No space left on device.*untouched"):
        await open_and_close(db)
    assert digest(db) == before
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'schema_migrations'") == []


async def test_a_0_4_0_database_on_read_only_media_is_refused_untouched(
    tmp_path: Path, read_only_mount: Callable[[Path], Path]
) -> None:
    db = copy_fixture(tmp_path)
    before = digest(db)
    read_only = read_only_mount(db.parent) / "sessions.db"
    with pytest.raises(MnesisStoreError, match=r"0\.4\.0.*write access.*untouched"):
        await open_and_close(read_only)
    report = await migrate_040(read_only, dry_run=True)  # a dry run needs no write access
    assert report.sessions == 4
    assert digest(db) == before


# -- dry run and the command ------------------------------------------------------------


async def test_a_dry_run_reports_and_changes_nothing(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    before, files = digest(db), sorted(db.parent.iterdir())
    dry = await migrate_040(db, dry_run=True)
    assert digest(db) == before and sorted(db.parent.iterdir()) == files
    done = await migrate_040(db)
    expected = {"sessions": 4, "messages": 64, "summaries": 6, "file_refs": 1}
    for report in (dry, done):
        assert report.migrated
        assert {k: getattr(report, k) for k in expected} == expected
    assert (dry.parts, dry.unshown_parts) == (done.parts, done.unshown_parts)
    assert dry.dry_run and not done.dry_run and dry.backup == done.backup


def _mnesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnesis", *args], capture_output=True, text=True, timeout=120
    )


def test_the_migrate_command(tmp_path: Path) -> None:
    db = copy_fixture(tmp_path)
    before = digest(db)

    dry = _mnesis("migrate", str(db), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "4 sessions, 64 messages" in dry.stdout and "Nothing was changed" in dry.stdout
    assert digest(db) == before and not db.with_name("sessions.db.0.4.0-backup").exists()

    done = _mnesis("migrate", str(db), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["migrated"] and report["sessions"] == 4
    assert digest(Path(report["backup"])) == before

    again = _mnesis("migrate", str(db))
    assert again.returncode == 0 and "nothing to migrate" in again.stdout

    missing = _mnesis("migrate", str(tmp_path / "nowhere.db"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
