"""PostgreSQL beyond the contract suite: many processes, racing migrations,
error translation and a whole session on a ``postgresql://`` URL.

Each test gets a fresh database (``pg_database``); without a reachable server
the tests skip, except on CI (``CI=true``) where they fail.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.errors import MnesisStoreError, SchemaVersionError
from mnesis.llm.base import LLMRequest
from mnesis.models.config import StoreConfig
from mnesis.store import PostgresStore, acquire_store, release_store
from mnesis.store.migrations import load_migrations
from mnesis.store.postgres import redact_url

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

WRITER = r"""
import asyncio, sys, time
from mnesis.models.message import TextPart
from mnesis.store import NewMessage, NewPart, PostgresStore

url, session_id, prefix, count = sys.argv[1:5]


async def main():
    print("ready", flush=True)
    sys.stdin.readline()
    store = await PostgresStore(url).open()
    for i in range(int(count)):
        message_id = f"{prefix}-{i}"
        parts = (NewPart(TextPart(text=f"{message_id} needle{prefix} " + "x" * 100), 30),)
        message = NewMessage(id=message_id, role="user", parts=parts, created_at=time.time())
        out = await store.append(session_id, (message,))
        print("ok", message_id, out.seqs[0], flush=True)
    print("version", await store.schema_version(), flush=True)
    await store.close()
    print("done", flush=True)


asyncio.run(main())
"""


async def _run_writers(url: str, session_id: str, specs: list[tuple[str, int]]) -> list[list[str]]:
    """Start one process per (prefix, count), release them together, return their lines."""
    procs = []
    for prefix, count in specs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            url,
            session_id,
            prefix,
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line == b"ready\n", (line, await proc.stderr.read() if proc.stderr else b"")
        procs.append(proc)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = await asyncio.wait_for(
        asyncio.gather(*(proc.communicate() for proc in procs)), timeout=120
    )
    out = []
    for proc, (stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr.decode()
        lines = stdout.decode().splitlines()
        assert lines[-1] == "done", stderr.decode()
        out.append(lines)
    return out


async def test_processes_appending_to_one_session_lose_and_duplicate_nothing(
    pg_database: str, build: Any
) -> None:
    store = await PostgresStore(pg_database).open()
    try:
        await store.create_session(build.session("s1"))
    finally:
        await store.close()
    writers, per_writer = 5, 40

    outputs = await _run_writers(pg_database, "s1", [(f"w{n}", per_writer) for n in range(writers)])

    total = writers * per_writer
    store = await PostgresStore(pg_database).open()
    try:
        messages = await store.get_messages("s1")
        assert len(messages) == total
        assert [m.message.seq for m in messages] == list(range(1, total + 1))
        by_id = {m.id: m for m in messages}
        assert set(by_id) == {f"w{n}-{i}" for n in range(writers) for i in range(per_writer)}
        for lines in outputs:
            committed = [(ln.split()[1], int(ln.split()[2])) for ln in lines if ln[:3] == "ok "]
            assert len(committed) == per_writer
            assert all(by_id[mid].message.seq == seq for mid, seq in committed)
            assert [s for _, s in committed] == sorted(s for _, s in committed)
        version, entries = await store.context_entries("s1")
        assert [e.ref_id for e in entries] == [m.id for m in messages]
        assert version == total
        hits = await store.search("s1", ("needlew3",), limit=1000)
        assert sorted(mid for _, mid in hits) == sorted(f"w3-{i}" for i in range(per_writer))
        assert await store.verify() == []
    finally:
        await store.close()


async def test_migrations_racing_from_four_processes_run_once(pg_database: str) -> None:
    # Every process opens the empty database at the same moment; each migrates or waits.
    outputs = await _run_writers(pg_database, "none", [(f"m{n}", 0) for n in range(4)])

    latest = load_migrations("postgres")[-1].version
    assert all(f"version {latest}" in lines for lines in outputs)
    import asyncpg

    conn = await asyncpg.connect(pg_database)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r[0] for r in rows] == list(range(1, latest + 1))  # each applied exactly once


async def test_a_newer_schema_is_refused_before_anything_changes(pg_database: str) -> None:
    store = await PostgresStore(pg_database).open()
    await store.close()
    import asyncpg

    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
        )
        with pytest.raises(SchemaVersionError, match="999"):
            await PostgresStore(pg_database).open()
        count = await conn.fetchval("SELECT COUNT(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert count == load_migrations("postgres")[-1].version + 1


async def _free_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


async def test_unreachable_server_gives_a_clear_error_without_the_password() -> None:
    port = await _free_port()
    url = f"postgresql://mnesis:s3cret-pw@127.0.0.1:{port}/db"

    with pytest.raises(MnesisStoreError) as err:
        await PostgresStore(url, timeout=5).open()

    message = str(err.value)
    assert "s3cret-pw" not in message
    assert f"postgresql://mnesis@127.0.0.1:{port}/db" in message
    assert "cannot reach" in message
    assert isinstance(err.value.__cause__, OSError)


async def test_missing_database_gives_a_clear_error(
    pg_database: str, pg_url_of: Callable[[str], str]
) -> None:
    url = pg_url_of("mnesis_no_such_database_" + str(random.randrange(10**9)))

    with pytest.raises(MnesisStoreError, match="does not exist"):
        await PostgresStore(url).open()


def test_store_url_hides_the_password() -> None:
    assert redact_url("postgresql://u:pw@h:5433/d?sslmode=require") == (
        "postgresql://u@h:5433/d?sslmode=require"
    )
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert PostgresStore("postgres://u:pw@h/d").url == "postgres://u@h/d"


async def test_acquire_store_routes_postgres_urls_and_shares_them(pg_database: str) -> None:
    config = StoreConfig(db_path=pg_database)
    a = await acquire_store(pg_database, config)
    b = await acquire_store(pg_database, config)
    try:
        assert isinstance(a, PostgresStore)
        assert a is b
    finally:
        await release_store(a)
        await release_store(b)
    with pytest.raises(MnesisStoreError, match="closed"):
        await a.get_session("x")


WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def _text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _model(request: LLMRequest) -> str:
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content or content.startswith("Summarise tersely"):
        return "Summary: the user and assistant talked about greek letters."
    return "ok, " + _text(20, len(content))


async def test_a_whole_session_on_postgres(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500, "prune_minimum_tokens": 100},
        }
    )
    model = "openai/gpt-4o"
    async with MnesisSession.open(
        model=model, config=config, db_path=pg_database, provider=MockProvider(_model)
    ) as session:
        for turn in range(6):
            await session.send(f"turn {turn} zanzibar{turn} " + _text(120, turn))
        await session.record("what about the platypus?", "The platypus lays eggs.")
        result = await session.compact()
        assert result.compacted_message_count > 0
        found = await session.grep("platypus lays")
        assert [m.role for m in found.matches] == ["assistant"]
        assert len((await session.grep("zanzibar3")).matches) == 1
        assert len(await session.conversation_messages()) == 14
        assert await session.verify() == []
        session_id = session.id

    monkeypatch.setenv("MNESIS_DB_URL", pg_database)  # found through the environment too
    reopened = await MnesisSession.load(session_id, provider=MockProvider(_model))
    try:
        assert len(await reopened.conversation_messages()) == 14
        assert await reopened.verify() == []
    finally:
        await reopened.close()


async def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg now fails

    with pytest.raises(MnesisStoreError, match=r"pip install 'mnesis\[postgres\]'"):
        await PostgresStore("postgresql://u@127.0.0.1/d").open()


async def test_long_bodies_stay_searchable_across_chunks(pg_database: str, build: Any) -> None:
    # tsvector positions stop at 16383 and a word keeps at most 256 of them: the store
    # cuts long bodies into overlapping chunks so phrases late in a body still match.
    filler = " ".join(f"w{i}" for i in range(30_000))
    common = "the " * 1_000
    store = await PostgresStore(pg_database).open()
    try:
        await store.create_session(build.session("s1"))
        await store.append(
            "s1",
            (
                build.message("far", text=filler + " Ultima Thule"),
                build.message("busy", text=common + "rare phrase here " + common),
                build.message("call", build.tool_call("c1"), role="assistant"),
            ),
        )
        await store.fill_tool_results("s1", (build.result("c1", common + "buried result"),))

        async def found(*terms: str) -> list[str]:
            return [mid for _, mid in await store.search("s1", terms)]

        assert await found("ultima", "thu") == ["far"]
        assert await found("w16382", "w16383", "w16384") == ["far"]  # across a cut
        assert await found("w29999", "ultima") == ["far"]
        assert await found("rare", "phrase") == ["busy"]
        assert await found("the", "rare") == ["busy"]
        assert await found("buried", "result") == ["call"]
        assert await found("thule", "w1") == []  # order matters
        assert await store.verify() == []
    finally:
        await store.close()


def test_index_words_follow_sqlites_tokenizer() -> None:
    from mnesis.store.postgres.text import tsquery, words

    assert words("Héllo /data/report.csv foo_bar-baz 42x") == [
        "hello",
        "data",
        "report",
        "csv",
        "foo",
        "bar",
        "baz",
        "42x",
    ]
    assert tsquery(("report.c",)) == "'report' <-> 'c':*"
    assert tsquery(("...",)) is None


async def test_concurrent_tasks_of_one_process_share_the_pool_safely(
    pg_database: str, build: Any
) -> None:
    store = await PostgresStore(pg_database, max_size=8).open()
    try:
        await store.create_session(build.session("s1"))

        async def writer(n: int) -> list[int]:
            seqs = []
            for i in range(10):
                out = await store.append("s1", (build.message(f"t{n}-{i}"),))
                seqs += out.seqs
            return seqs

        results = await asyncio.gather(*(writer(n) for n in range(12)))
        assert sorted(s for seqs in results for s in seqs) == list(range(1, 121))
        assert (await store.get_session("s1")).context_version == 120
        assert await store.verify() == []
    finally:
        await store.close()


COMPACTOR = r"""
import asyncio, json, sys
from mnesis import MnesisConfig, MnesisSession, MockProvider

async def model(request):
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content:
        await asyncio.sleep(0.6)
        return "Summary."
    return "ok"

async def main():
    config = MnesisConfig.model_validate({"compaction": {"auto": False}})
    session = await MnesisSession.load(sys.argv[2], db_path=sys.argv[1], config=config,
                                       provider=MockProvider(model))
    print("ready", flush=True)
    sys.stdin.readline()
    result = await session.compact()
    print(json.dumps({"skipped": result.skipped, "level": result.level_used}), flush=True)
    await session.close()

asyncio.run(main())
"""


async def test_two_processes_never_compact_one_session_at_once(pg_database: str) -> None:
    config = MnesisConfig.model_validate({"compaction": {"auto": False}})
    async with MnesisSession.open(
        model="openai/gpt-4o", config=config, db_path=pg_database, provider=MockProvider(_model)
    ) as session:
        for turn in range(30):
            await session.record(_text(150, turn), _text(100, turn + 1))
        session_id = session.id
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            COMPACTOR,
            pg_database,
            session_id,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outputs = [await asyncio.wait_for(proc.communicate(), 60) for proc in procs]
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r["skipped"] for r in results) == [False, True]
    reopened = await MnesisSession.load(
        session_id, db_path=pg_database, provider=MockProvider(_model)
    )
    try:
        assert await reopened.verify() == []
    finally:
        await reopened.close()


async def _wait_for_other_backends_to_end(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for _ in range(200):
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if others == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the killed writer's connection did not end within 10 s")
    finally:
        await conn.close()


async def test_a_writer_killed_mid_transaction_leaves_postgres_consistent(
    pg_database: str, build: Any
) -> None:
    store = await PostgresStore(pg_database).open()
    try:
        await store.create_session(build.session("s1"))
    finally:
        await store.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        pg_database,
        "s1",
        "k",
        "100000",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    committed = 0
    while committed < 40:  # let it commit a few dozen, then kill it mid-stream
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        committed += line.startswith(b"ok ")
    proc.kill()
    await proc.wait()
    # An append is one statement: the server finishes (and commits, whole) the
    # one in flight when the client died. Read once its backend has ended.
    await _wait_for_other_backends_to_end(pg_database)
    store = await PostgresStore(pg_database).open()
    try:
        messages = await store.get_messages("s1")
        assert len(messages) >= committed
        assert [m.message.seq for m in messages] == list(range(1, len(messages) + 1))
        assert await store.verify() == []
        after = await store.append("s1", (build.message("after-the-kill"),))
        assert after.seqs == (len(messages) + 1,)
    finally:
        await store.close()


async def test_store_config_url_selects_postgres(pg_database: str) -> None:
    config = MnesisConfig(store=StoreConfig(url=pg_database))
    async with MnesisSession.open(
        model="openai/gpt-4o", config=config, provider=MockProvider(_model)
    ) as session:
        await session.record("stored where?", "in PostgreSQL")
        assert session._store.url.startswith("postgresql://")
