"""Several OS processes on one SQLite file: no lost, duplicated or torn writes.

Each writer is a separate ``python -c`` process. Writers first report
``ready`` and then wait for ``go`` on stdin, so their appends really overlap.
After each append returns (i.e. is committed) a writer prints ``ok <id> <seq>``.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from mnesis.store import SQLiteStore
from mnesis.store.migrations import load_migrations

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

WRITER = r"""
import asyncio, sys, time
from mnesis.models.message import TextPart, TokenUsage, ToolPart
from mnesis.models.results import ContextBreakdown, TurnSnapshot
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore, ToolResult

path, mode, session_id, prefix, count = sys.argv[1:6]
count = int(count)


def text(message_id, role="user", n_parts=1):
    parts = tuple(
        NewPart(TextPart(text=f"{message_id} part {k} " + "x" * 200), 50) for k in range(n_parts)
    )
    return NewMessage(id=message_id, role=role, parts=parts, created_at=time.time())


async def main():
    if mode == "fresh":  # open a brand-new file only after "go"
        print("ready", flush=True)
        sys.stdin.readline()
    store = await SQLiteStore(path, timeout=30.0).open()
    if mode == "fresh":
        await store.create_session(SessionRecord(
            id=session_id, model="m", agent="a", parent_id=None, system_prompt="p",
            config_json="{}", created_at=time.time(),
        ))
    else:
        print("ready", flush=True)
        sys.stdin.readline()
    if mode == "crash":  # whole turns, forever, until killed
        i = 0
        while True:
            call = ToolPart(tool_name="t", tool_call_id=f"{prefix}-c{i}", input={"i": i})
            assistant = NewMessage(
                id=f"{prefix}-a{i}", role="assistant", created_at=time.time(),
                parts=(*text("unused", n_parts=20).parts, NewPart(call, 9)),
            )
            out = await store.append(
                session_id, (text(f"{prefix}-u{i}", n_parts=20), assistant),
                usage=TokenUsage(input=10, output=5), cost=0.001,
                snapshot=TurnSnapshot(
                    turn_index=i, role="assistant", context_tokens=ContextBreakdown(total=i),
                ),
            )
            print("ok", f"{prefix}-u{i}", out.seqs[0], flush=True)
            print("ok", f"{prefix}-a{i}", out.seqs[1], flush=True)
            await store.fill_tool_results(
                session_id, (ToolResult(f"{prefix}-c{i}", "y" * 500, None, 100),)
            )
            print("filled", f"{prefix}-c{i}", flush=True)
            i += 1
    for i in range(count):
        message_id = f"{prefix}-{i}"
        out = await store.append(session_id, (text(message_id),))
        print("ok", message_id, out.seqs[0], flush=True)
    await store.close()
    print("done", flush=True)


asyncio.run(main())
"""


async def spawn(db: Path, mode: str, session_id: str, prefix: str, count: int = 0) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(db),
        mode,
        session_id,
        prefix,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
    if line != b"ready\n":
        err = await proc.stderr.read()
        raise AssertionError(f"writer did not start: {line!r} {err.decode()}")
    return proc


async def run_together(procs: list[Any]) -> list[list[tuple[str, int]]]:
    """Release all writers at once; return each one's committed (id, seq) pairs."""
    for proc in procs:
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = await asyncio.wait_for(
        asyncio.gather(*(proc.communicate() for proc in procs)), timeout=60
    )
    committed: list[list[tuple[str, int]]] = []
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert lines[-1] == "done", err.decode()
        committed.append([(ln.split()[1], int(ln.split()[2])) for ln in lines if ln[:3] == "ok "])
    return committed


async def prepared_store(db: Path, build: Any, *session_ids: str) -> None:
    store = await SQLiteStore(db).open()
    try:
        for sid in session_ids:
            await store.create_session(build.session(sid))
    finally:
        await store.close()


def integrity(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


async def test_processes_appending_to_one_session_lose_and_duplicate_nothing(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "shared.db"
    await prepared_store(db, build, "s1")
    writers, per_writer = 4, 50
    procs = [await spawn(db, "append", "s1", f"w{n}", per_writer) for n in range(writers)]

    committed = await run_together(procs)

    total = writers * per_writer
    store = await SQLiteStore(db).open()
    try:
        messages = await store.get_messages("s1")
        assert len(messages) == total
        assert [m.message.seq for m in messages] == list(range(1, total + 1))
        assert {m.id for m in messages} == {f"w{n}-{i}" for n in range(writers) for i in range(50)}
        by_id = {m.id: m for m in messages}
        for writer in committed:
            assert len(writer) == per_writer
            # each writer got the seq that is really stored, increasing in its own order
            assert all(by_id[mid].message.seq == seq for mid, seq in writer)
            assert [seq for _, seq in writer] == sorted(seq for _, seq in writer)
            assert by_id[writer[7][0]].text_content().startswith(f"{writer[7][0]} part 0 ")
        version, entries = await store.context_entries("s1")
        assert [e.ref_id for e in entries] == [m.id for m in messages]
        assert version == total
        assert await store.verify() == []
    finally:
        await store.close()
    assert integrity(db) == [("ok",)]


async def test_processes_appending_to_different_sessions_keep_them_apart(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "two.db"
    await prepared_store(db, build, "left", "right")
    procs = [
        await spawn(db, "append", "left", "L", 50),
        await spawn(db, "append", "right", "R", 50),
    ]

    committed = await run_together(procs)

    store = await SQLiteStore(db).open()
    try:
        for sid, prefix, writer in (("left", "L", committed[0]), ("right", "R", committed[1])):
            messages = await store.get_messages(sid)
            assert [m.id for m in messages] == [f"{prefix}-{i}" for i in range(50)]
            assert [m.message.seq for m in messages] == list(range(1, 51))
            assert [seq for _, seq in writer] == list(range(1, 51))
            assert (await store.get_session(sid)).context_version == 50
        assert await store.verify() == []
    finally:
        await store.close()


async def test_processes_opening_a_brand_new_file_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "new" / "race.db"
    procs = [await spawn(db, "fresh", f"s{n}", f"p{n}", 10) for n in range(4)]

    committed = await run_together(procs)

    assert all([seq for _, seq in writer] == list(range(1, 11)) for writer in committed)
    store = await SQLiteStore(db).open()
    try:
        assert await store.schema_version() == load_migrations("sqlite")[-1].version
        for n in range(4):
            assert len(await store.get_messages(f"s{n}")) == 10
        assert await store.verify() == []
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    finally:
        conn.close()
    assert rows == [(m.version,) for m in load_migrations("sqlite")]  # each applied once


async def test_a_writer_killed_mid_stream_leaves_every_committed_message_intact(
    tmp_path: Path, build: Any
) -> None:
    db = tmp_path / "crash.db"
    await prepared_store(db, build, "s1")
    proc = await spawn(db, "crash", "s1", "k")
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()

    committed: dict[str, int] = {}
    filled: set[str] = set()
    try:
        while len(committed) < 80:  # 40 whole turns committed, then kill mid-stream
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
            assert line, (await proc.stderr.read()).decode()
            word, *rest = line.decode().split()
            if word == "ok":
                committed[rest[0]] = int(rest[1])
            elif word == "filled":
                filled.add(rest[0])
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert integrity(db) == [("ok",)]
    store = await SQLiteStore(db).open()
    try:
        assert await store.verify() == []
        messages = await store.get_messages("s1")
        stored = {m.id: m for m in messages}
        assert [m.message.seq for m in messages] == list(range(1, len(messages) + 1))
        for mid, seq in committed.items():
            assert stored[mid].message.seq == seq
            assert len(stored[mid].parts) == (20 if mid.startswith("k-u") else 21)
        for call_id in filled:
            turn = call_id.removeprefix("k-c")
            (call,) = stored[f"k-a{turn}"].tool_parts()
            assert call.output == "y" * 500
        # turns are whole: a user message never lacks its assistant message
        users = {m.id[3:] for m in messages if m.id.startswith("k-u")}
        assistants = {m.id[3:] for m in messages if m.id.startswith("k-a")}
        assert users == assistants
        session = await store.get_session("s1")
        assert session.turn_count == len(users) == len(await store.snapshots("s1"))
        assert session.tokens.input == 10 * len(users)
        # and the database still takes writes
        await store.append("s1", (build.message("after-crash"),))
        assert (await store.get_message("after-crash")).message.seq == len(messages) + 1
        assert await store.verify() == []
    finally:
        await store.close()
