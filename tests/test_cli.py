"""The `mnesis` command, run through its entry points as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mnesis.store import SQLiteStore

SCRIPT = Path(sys.executable).parent / "mnesis"


async def _new_database(path: Path) -> None:
    await (await SQLiteStore(path).open()).close()


def mnesis(
    *args: str, db: Path, stdin: str | None = None, ok: bool = True, entry: str = "module"
) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if entry == "script" else [sys.executable, "-m", "mnesis"]
    env = {**os.environ, "MNESIS_MOCK_LLM": "1", "MNESIS_DB_URL": str(db)}
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, input=stdin, timeout=120
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("cli") / "demo.db"
    shown = mnesis("demo", "--turns", "80", db=db, entry="script")
    assert "compaction:" in shown.stdout
    assert "expand sum_" in shown.stdout and "ZEBRA-4471" in shown.stdout
    assert "store invariants: ok" in shown.stdout
    sessions = json.loads(mnesis("sessions", "--json", db=db).stdout)
    assert len(sessions) == 1 and sessions[0]["summaries"] >= 1
    return db, sessions[0]["id"]


def test_sessions_table_and_stats(demo_db: tuple[Path, str]) -> None:
    db, sid = demo_db
    assert sid in mnesis("sessions", "--db", str(db), db=db).stdout
    stats = json.loads(mnesis("stats", "--json", db=db).stdout)
    assert stats["sessions"] == 1 and stats["messages"] == 160 and stats["summaries"] >= 1


def test_show_marks_summarised_messages(demo_db: tuple[Path, str]) -> None:
    db, sid = demo_db
    shown = mnesis("show", sid, db=db).stdout
    assert "#1 user" in shown and "summarised in sum_" in shown
    data = json.loads(mnesis("show", sid, "--json", db=db).stdout)
    assert data[0]["summary_id"].startswith("sum_") and len(data) == 160


def test_context_shows_what_the_model_gets_with_tokens(demo_db: tuple[Path, str]) -> None:
    db, sid = demo_db
    text = mnesis("context", sid, db=db).stdout
    assert "[Summary sum_" in text and "usable" in text
    data = json.loads(mnesis("context", sid, "--json", db=db).stdout)
    assert data["messages"][0]["role"] == "system"
    assert data["tokens"]["total"] <= data["usable_tokens"]


def test_grep_expand_export_verify(demo_db: tuple[Path, str], tmp_path: Path) -> None:
    db, sid = demo_db
    found = json.loads(mnesis("grep", sid, "launch code", "--json", db=db).stdout)
    match = found["matches"][0]
    assert "ZEBRA-4471" in match["text"] and match["summary_id"]
    expanded = mnesis("expand", sid, match["summary_id"], "--limit", "2", db=db).stdout
    assert "ZEBRA-4471" in expanded and "more: --offset 2" in expanded
    out = tmp_path / "s.md"
    mnesis("export", sid, "--format", "markdown", "-o", str(out), db=db)
    assert out.read_text().startswith(f"# Session {sid}")
    exported = json.loads(mnesis("export", sid, "--format", "json", db=db).stdout)
    assert len(exported["messages"]) == 160
    assert f"{sid}: ok" in mnesis("verify", sid, db=db).stdout


def test_export_into_a_pipe_closed_early_exits_0(demo_db: tuple[Path, str]) -> None:
    # `mnesis export ID | head -1`: the reader leaving is not an error.
    db, sid = demo_db
    env = {**os.environ, "MNESIS_MOCK_LLM": "1", "MNESIS_DB_URL": str(db)}
    writer = subprocess.Popen(
        [sys.executable, "-m", "mnesis", "export", sid, "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert writer.stdout is not None and writer.stderr is not None
    assert writer.stdout.readline()  # read one line, then hang up
    writer.stdout.close()
    assert writer.wait(timeout=120) == 0
    assert writer.stderr.read() == b""
    writer.stderr.close()


def test_errors_are_one_line_with_a_non_zero_exit(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    asyncio.run(_new_database(db))
    missing = mnesis("show", "sess_nope", db=db, ok=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "mnesis: error: no session with id 'sess_nope' in the store"
    bad = tmp_path / "bad.db"
    bad.write_text("this is not a database at all" * 100)
    unreadable = mnesis("sessions", "--db", str(bad), db=db, ok=False)
    assert unreadable.returncode == 1 and "not a readable mnesis database" in unreadable.stderr
    assert len(unreadable.stderr.strip().splitlines()) == 1
    usage = mnesis("grep", db=db, ok=False)
    assert usage.returncode == 2


def test_chat_streams_and_runs_slash_commands(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    script = "My name is Alice.\n/history\n/grep alice\n/compact\n/context\n/nonsense\n/exit\n"
    done = mnesis("chat", db=db, stdin=script, entry="script")
    assert "using the mock model" in done.stdout
    assert 'Mock answer to "My name is Alice."' in done.stdout
    assert "turn 1:" in done.stdout and "[verbatim] My name is Alice." in done.stdout
    assert "nothing to compact yet" in done.stdout
    assert "commands: /compact" in done.stdout
    sessions = json.loads(mnesis("sessions", "--json", db=db).stdout)
    resumed = mnesis("chat", "--session", sessions[0]["id"], db=db, stdin="again\n", entry="script")
    assert sessions[0]["id"] in resumed.stdout
    assert json.loads(mnesis("sessions", "--json", db=db).stdout)[0]["turns"] == 2


# -- hard edges: reading without creating or writing, bad numbers, hostile text ------

READ_COMMANDS = [
    ("sessions",),
    ("stats",),
    ("show", "sess_x"),
    ("context", "sess_x"),
    ("grep", "sess_x", "word"),
    ("expand", "sess_x", "sum_x"),
    ("export", "sess_x"),
    ("verify", "sess_x"),
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_read_commands_never_create_a_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    typo = tmp_path / "sesions.db"
    done = mnesis(*command, "--db", str(typo), db=typo, ok=False)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"mnesis: error: database {typo} does not exist (nothing was created)"
    )
    assert not typo.exists()


def test_bad_numbers_and_urls_are_one_line_without_the_password(
    demo_db: tuple[Path, str],
) -> None:
    db, sid = demo_db
    cases = [
        ("grep", sid, "x", "--offset", "99999999999999999999999"),
        ("grep", sid, "x", "--limit", "99999999999999999999999"),
        ("expand", sid, "sum_x", "--offset", "-1"),
        ("sessions", "--db", "postgresql://u:s3cret@host:notaport/db"),
        ("show", sid, "--db", "postgresql://u:s3cret@host:notaport/db"),
        ("stats", "--db", "postgresql://u:s3cret@host:99999/db"),
        ("sessions", "--db", "postgresql://u:s3cret@[::1/db"),
    ]
    for command in cases:
        done = mnesis(*command, db=db, ok=False)
        assert done.returncode == 1, command
        assert done.stderr.startswith("mnesis: error: "), (command, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (command, done.stderr)
        assert "s3cret" not in done.stderr + done.stdout


HOSTILE = "title\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x9b1m\r\x08\x7f end\tok"


async def _hostile_session(db: Path) -> str:
    from mnesis import MnesisSession, MockProvider, ToolPart

    session = await MnesisSession.create(model="gpt-4o", db_path=str(db), provider=MockProvider())
    async with session:
        await session.record(f"user says {HOSTILE}", f"assistant says {HOSTILE}")
        call = ToolPart(tool_name="run\x1b[5m", tool_call_id="c\x1b1", input={"q": HOSTILE})
        await session.record("use a tool", [call])
        await session.record_tool_result("c\x1b1", f"tool says {HOSTILE}")
    return session.id


def test_terminal_escapes_from_stored_text_are_shown_escaped(tmp_path: Path) -> None:
    db = tmp_path / "hostile.db"
    sid = asyncio.run(_hostile_session(db))
    controls = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"]
    for command in (("show", sid), ("context", sid), ("grep", sid, "says")):
        shown = mnesis(*command, db=db).stdout
        assert not [c for c in controls if c in shown], command
        assert "\\x1b]0;pwned\\x07" in shown and "\\x9b1m" in shown, command
        assert "\\x7f end" in shown, command
    as_json = mnesis("show", sid, "--json", db=db).stdout
    assert not [c for c in controls if c in as_json]
    assert json.loads(as_json)[0]["parts"][0]["text"] == f"user says {HOSTILE}"


def test_a_database_on_read_only_media_can_be_listed_and_read(
    demo_db: tuple[Path, str], tmp_path: Path, read_only_mount: Any
) -> None:
    db, sid = demo_db
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "sessions.db").write_bytes(db.read_bytes())
    copy = read_only_mount(folder) / "sessions.db"
    before = (folder / "sessions.db").read_bytes()

    assert sid in mnesis("sessions", "--db", str(copy), db=copy).stdout
    assert json.loads(mnesis("stats", "--json", db=copy).stdout)["messages"] == 160
    assert "ZEBRA-4471" in mnesis("grep", sid, "launch code", db=copy).stdout
    assert "#1 user" in mnesis("show", sid, db=copy).stdout
    assert f"{sid}: ok" in mnesis("verify", sid, db=copy).stdout
    assert (folder / "sessions.db").read_bytes() == before
    assert sorted(os.listdir(folder)) == ["sessions.db"]
