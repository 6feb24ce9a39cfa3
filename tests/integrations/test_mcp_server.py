"""`mnesis mcp`: the memory tools served over stdio, driven by the MCP SDK's own client.

Every test starts the real command in a subprocess (``python -m mnesis mcp`` or
the ``mnesis`` console script) against a store a test session wrote, and talks
to it with the SDK's ``stdio_client`` and ``ClientSession``. Each conversation
runs under a deadline, so a server that hangs fails the test instead of the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.errors import ConfigError
from mnesis.integrations.mcp_server import (
    TOOLS,
    MemoryTools,
    ToolArgumentError,
    UnknownToolError,
    read_only_store,
)
from mnesis.llm.base import LLMRequest
from mnesis.recall import Recall, memory_tool_handlers
from mnesis.session.embedding import session_embedder

MODEL = "openai/gpt-4o"
DEADLINE = 120.0  # seconds for one whole client conversation; only a hang gets near it
VOCAB = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()


def summariser(request: LLMRequest) -> str:
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content:
        return f"Summary of {len(content)} characters: assorted nature words."
    return "noted"


def small() -> MnesisConfig:
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500},
        }
    )


@dataclass
class Stored:
    db: str
    session_id: str
    summary_id: str
    first_message_id: str


async def store_a_session(db: str) -> Stored:
    """A session whose first turns were compacted into a summary, and one other session."""
    rng = random.Random(7)
    provider = MockProvider(summariser)
    async with MnesisSession.open(model=MODEL, db_path=db, provider=provider) as other:
        await other.record("a zebra in the other session", "ok")
    async with MnesisSession.open(
        model=MODEL, config=small(), db_path=db, provider=provider
    ) as session:
        await session.record("The launch code is Zebra-9431, keep it safe.", "Understood.")
        for _ in range(40):
            await session.record(
                " ".join(rng.choice(VOCAB) for _ in range(80)),
                " ".join(rng.choice(VOCAB) for _ in range(40)),
            )
        await session.record("Remind me about the zebra later", "Sure.")
        await session.compact()
        await session.wait_for_compaction()
        (hit,) = await session.grep("Zebra-9431")
        assert hit.summary_id is not None  # summarised out of the context, still found
        return Stored(db, session.id, hit.summary_id, hit.message_id)


def server_params(*args: str, env: dict[str, str] | None = None, script: bool = False) -> Any:
    if script:
        command = str(Path(sys.executable).with_name("mnesis"))
        argv = ["mcp", *args]
    else:
        command, argv = sys.executable, ["-m", "mnesis", "mcp", *args]
    return StdioServerParameters(
        command=command,
        args=argv,
        env={"HOME": os.environ["HOME"], **(env or {})},
    )


@asynccontextmanager
async def connected(params: Any) -> AsyncIterator[ClientSession]:
    """An initialised client session with the server; the whole of it under DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, read_timeout_seconds=60) as client,
        ):
            await client.initialize()
            yield client


async def call_text(client: ClientSession, name: str, **arguments: Any) -> tuple[str, bool]:
    result = await client.call_tool(name, arguments)
    (content,) = result.content
    assert content.type == "text"
    return content.text, result.is_error


@pytest.fixture
async def stored(tmp_path: Path) -> Stored:
    return await store_a_session(str(tmp_path / "sessions.db"))


async def in_process(stored: Stored, max_chars: int) -> dict[str, str]:
    """What the session's own memory tools answer, for comparison."""
    async with read_only_store(stored.db) as store:
        recall = Recall(store, stored.session_id)
        recall.embedder = session_embedder(small())  # what the session was configured with
        handlers = memory_tool_handlers(recall, max_chars=max_chars)
        return {
            "search": await handlers["lcm_search"]("which code launches it"),
            "grep": await handlers["lcm_grep"]("zebra"),
            "describe": await handlers["lcm_describe"](id=stored.summary_id),
            "expand": await handlers["lcm_expand"](stored.summary_id),
            "expand_page_2": await handlers["lcm_expand"](stored.summary_id, offset=5),
        }


# -- the protocol ---------------------------------------------------------------------


async def test_initialises_and_lists_the_read_only_memory_tools(stored: Stored) -> None:
    async with (
        asyncio.timeout(DEADLINE),
        stdio_client(server_params("--db", stored.db)) as (read, write),
        ClientSession(read, write, read_timeout_seconds=60) as client,
    ):
        init = await client.initialize()
        assert init.server_info.name == "mnesis"
        assert init.instructions is not None and "list_sessions" in init.instructions
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"list_sessions", "lcm_grep", "lcm_describe", "lcm_expand", "lcm_search"}
    assert set(tools) == {tool.name for tool in TOOLS}
    for name, tool in tools.items():
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.description
        if name != "list_sessions":
            assert tool.input_schema["required"][0] == "session_id"
    assert tools["lcm_grep"].input_schema["required"] == ["session_id", "pattern"]
    assert tools["lcm_expand"].input_schema["required"] == ["session_id", "summary_id"]


async def test_each_tool_answers_exactly_as_the_in_process_tools_do(stored: Stored) -> None:
    max_chars = 2_000  # small enough that expand pages, as in a session
    expected = await in_process(stored, max_chars)
    sid = stored.session_id
    async with connected(server_params("--db", stored.db, "--max-chars", str(max_chars))) as c:
        listing, error = await call_text(c, "list_sessions")
        assert not error and listing.count("sess_") == 2 and sid in listing
        assert "42 turns" in listing
        grep, error = await call_text(c, "lcm_grep", session_id=sid, pattern="zebra")
        assert not error and grep == expected["grep"]
        assert f"in summary {stored.summary_id}" in grep and "verbatim in context" in grep
        assert "other session" not in grep  # another session's messages stay out
        found, error = await call_text(
            c, "lcm_search", session_id=sid, query="which code launches it"
        )
        # The best match is the same; how ties further down are ordered is the search's own.
        assert not error and found.splitlines()[0] == expected["search"].splitlines()[0]
        assert "Zebra-9431" in found.splitlines()[0]
        described, error = await call_text(c, "lcm_describe", session_id=sid, id=stored.summary_id)
        assert not error and described == expected["describe"]
        expanded, error = await call_text(
            c, "lcm_expand", session_id=sid, summary_id=stored.summary_id
        )
        assert not error and expanded == expected["expand"]
        assert "Zebra-9431" in expanded and "call lcm_expand with offset=" in expanded
        page, error = await call_text(
            c, "lcm_expand", session_id=sid, summary_id=stored.summary_id, offset=5
        )
        assert not error and page == expected["expand_page_2"]
        message, error = await call_text(
            c, "lcm_describe", session_id=sid, id=stored.first_message_id
        )
        assert not error and f'"summary_id": "{stored.summary_id}"' in message


async def test_list_sessions_pages_newest_first(tmp_path: Path) -> None:
    db = str(tmp_path / "many.db")
    ids = []
    for i in range(5):
        async with MnesisSession.open(
            model=MODEL, db_path=db, provider=MockProvider(summariser)
        ) as session:
            await session.record(f"turn of session {i}", "ok")
            ids.append(session.id)
    async with connected(server_params("--db", db)) as client:
        first, _ = await call_text(client, "list_sessions", limit=2)
        rest, _ = await call_text(client, "list_sessions", offset=2, limit=10)
        past, _ = await call_text(client, "list_sessions", offset=9)
    assert "call list_sessions with offset=2" in first
    listed = [
        line.split(":")[0]
        for line in (first + "\n" + rest).splitlines()
        if line.startswith("sess_")
    ]
    assert sorted(listed) == sorted(ids) and len(listed) == 5
    assert "offset=" not in rest
    assert past == "no sessions at offset 9; there are 5"


# -- errors -----------------------------------------------------------------------------


async def test_bad_arguments_unknown_sessions_and_ids_are_tool_errors(stored: Stored) -> None:
    sid = stored.session_id
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("lcm_grep", {"session_id": sid}, "'pattern' is a required property"),
        ("lcm_grep", {"pattern": "zebra"}, "'session_id' is a required property"),
        ("lcm_grep", {"session_id": sid, "pattern": "x", "offset": "two"}, "offset: 'two' is not"),
        ("lcm_grep", {"session_id": sid, "pattern": "x", "offset": -1}, "offset: -1 is less"),
        ("lcm_grep", {"session_id": sid, "pattern": "x", "limit": 5}, "'limit' was unexpected"),
        ("lcm_grep", {"session_id": sid, "pattern": "   "}, "grep needs a non-empty pattern"),
        ("lcm_grep", {"session_id": sid, "pattern": "(", "regex": True}, "invalid regular expr"),
        ("lcm_grep", {"session_id": sid, "pattern": "x", "offset": 10**12}, "offset must be"),
        ("lcm_grep", {"session_id": "sess_nope", "pattern": "x"}, "no session with id 'sess_nope'"),
        ("lcm_describe", {"session_id": sid, "id": "sum_nope"}, "no summary, message or file"),
        ("lcm_expand", {"session_id": sid, "summary_id": "sum_nope"}, "with id 'sum_nope'"),
        ("lcm_expand", {"session_id": sid, "summary_id": stored.first_message_id}, "no summary"),
        ("list_sessions", {"limit": 0}, "limit: 0 is less than the minimum of 1"),
    ]
    async with connected(server_params("--db", stored.db)) as client:
        for name, arguments, expected in cases:
            text, is_error = await call_text(client, name, **arguments)
            assert is_error, (name, arguments, text)
            assert expected in text, (name, arguments, text)
        unknown, _ = await call_text(client, "lcm_grep", session_id="sess_nope", pattern="x")
        assert "list_sessions shows the stored sessions" in unknown
        with pytest.raises(MCPError, match="unknown tool 'lcm_recall'") as raised:
            await client.call_tool("lcm_recall", {"session_id": sid, "query": "x"})
        assert raised.value.code == -32602  # INVALID_PARAMS: a protocol error, as the spec asks
        text, is_error = await call_text(client, "lcm_grep", session_id=sid, pattern="Zebra-9431")
        assert not is_error and "Zebra-9431" in text  # still serving after every error


async def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sessions.db"
    done = subprocess.run(
        [sys.executable, "-m", "mnesis", "mcp", "--db", str(missing)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # stdout belongs to the protocol
    assert "does not exist" in done.stderr and str(missing) in done.stderr
    assert not missing.exists() and not missing.parent.exists()


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def test_a_client_of_a_server_that_cannot_start_gets_an_error_not_a_hang(
    tmp_path: Path,
) -> None:
    params = server_params("--db", str(tmp_path / "missing.db"))
    with pytest.raises(BaseException) as raised:  # the SDK raises exception groups
        async with connected(params):
            pass
    assert any(
        isinstance(e, MCPError) and "Connection closed" in str(e) for e in leaves(raised.value)
    ), raised.value
    assert not (tmp_path / "missing.db").exists()


async def test_bad_options_fail_before_serving(tmp_path: Path, stored: Stored) -> None:
    for args, expected in (
        (["--db", stored.db, "--max-chars", "10"], "max_chars must be between 2,000"),
        (["--db", "mysql://h/db"], "unsupported database URL scheme 'mysql'"),
        (["--db", ":memory:"], "in-memory database"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mnesis", "mcp", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        assert done.returncode == 1 and expected in done.stderr, done.stderr


# -- read-only --------------------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_serving_never_writes_the_database(stored: Stored) -> None:
    db = Path(stored.db)
    before = {p.name: digest(p) for p in db.parent.glob("sessions.db*")}
    async with connected(server_params("--db", stored.db, script=True)) as client:
        for name, arguments in (
            ("list_sessions", {}),
            ("lcm_grep", {"session_id": stored.session_id, "pattern": "zebra"}),
            ("lcm_describe", {"session_id": stored.session_id, "id": stored.summary_id}),
            ("lcm_expand", {"session_id": stored.session_id, "summary_id": stored.summary_id}),
        ):
            _, is_error = await call_text(client, name, **arguments)
            assert not is_error
    after = {p.name: digest(p) for p in db.parent.glob("sessions.db*")}
    assert after["sessions.db"] == before["sessions.db"]
    # SQLite may leave an empty write-ahead log beside a WAL file it read; never a frame.
    empty = hashlib.sha256(b"").hexdigest()
    assert after.get("sessions.db-wal", empty) in (before.get("sessions.db-wal"), empty)


async def test_an_older_schema_is_refused_not_migrated(stored: Stored) -> None:
    db = Path(stored.db)
    with sqlite3.connect(db) as conn:  # as if the last migration had not run yet
        (latest,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
    conn.close()
    before = digest(db)
    done = subprocess.run(
        [sys.executable, "-m", "mnesis", "mcp", "--db", str(db)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 1
    assert "older than this mnesis needs" in done.stderr, done.stderr
    assert digest(db) == before


async def test_serves_while_the_application_keeps_writing(stored: Stored) -> None:
    async with connected(server_params("--db", stored.db)) as client:
        session = await MnesisSession.load(stored.session_id, db_path=stored.db)
        try:
            await session.record("a brand new okapi fact", "noted")
        finally:
            await session.close()
        text, is_error = await call_text(
            client, "lcm_grep", session_id=stored.session_id, pattern="okapi"
        )
    assert not is_error and "a brand new okapi fact" in text


async def test_database_comes_from_mnesis_db_url_without_db(stored: Stored) -> None:
    params = server_params(env={"MNESIS_DB_URL": stored.db}, script=True)
    async with connected(params) as client:
        listing, is_error = await call_text(client, "list_sessions")
    assert not is_error and stored.session_id in listing


# -- PostgreSQL ---------------------------------------------------------------------------


async def test_serves_a_postgresql_store(pg_database: str) -> None:
    stored = await store_a_session(pg_database)
    async with connected(server_params("--db", pg_database)) as client:
        listing, _ = await call_text(client, "list_sessions")
        grep, grep_error = await call_text(
            client, "lcm_grep", session_id=stored.session_id, pattern="Zebra-9431"
        )
        expanded, expand_error = await call_text(
            client, "lcm_expand", session_id=stored.session_id, summary_id=stored.summary_id
        )
        missing, missing_error = await call_text(
            client, "lcm_describe", session_id=stored.session_id, id="msg_nope"
        )
        found, search_error = await call_text(
            client, "lcm_search", session_id=stored.session_id, query="which code launches it"
        )
    assert stored.session_id in listing
    assert not search_error and "Zebra-9431" in found.splitlines()[0]
    assert not grep_error and f"in summary {stored.summary_id}" in grep
    assert not expand_error and "Zebra-9431" in expanded
    assert missing_error and "no summary, message or file with id 'msg_nope'" in missing


async def test_an_empty_postgresql_database_is_refused_and_left_empty(pg_database: str) -> None:
    import asyncpg

    done = subprocess.run(
        [sys.executable, "-m", "mnesis", "mcp", "--db", pg_database],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 1 and "has no mnesis schema" in done.stderr, done.stderr
    conn = await asyncpg.connect(pg_database, timeout=5)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert tables == 0


# -- in process ------------------------------------------------------------------------------


async def test_memory_tools_answer_in_process_without_the_sdk(stored: Stored) -> None:
    async with read_only_store(stored.db) as store:
        tools = MemoryTools(store, max_chars=2_000)
        text = await tools.call("lcm_grep", {"session_id": stored.session_id, "pattern": "zebra"})
        assert f"in summary {stored.summary_id}" in text
        with pytest.raises(UnknownToolError, match="unknown tool 'lcm_nope'"):
            await tools.call("lcm_nope", {})
        with pytest.raises(ToolArgumentError, match="'id' is a required property"):
            await tools.call("lcm_describe", {"session_id": stored.session_id})
        for bad in (0, 1_999, 48_001, True, "12000"):
            with pytest.raises(ConfigError, match="max_chars"):
                MemoryTools(store, max_chars=bad)  # type: ignore[arg-type]


# -- example and packaging ------------------------------------------------------------


def test_import_mnesis_does_not_import_the_mcp_sdk() -> None:
    code = (
        "import sys, mnesis, mnesis.integrations.mcp_server, mnesis.cli.main; "
        "print('mcp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_without_the_sdk_the_command_names_the_extra(stored: Stored) -> None:
    code = (
        "import sys; sys.modules['mcp'] = None; from mnesis.cli.main import main; "
        f"sys.exit(main(['mcp', '--db', {stored.db!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert done.returncode == 1
    assert "pip install 'mnesis[mcp]'" in done.stderr
