"""PostgreSQL's one-statement append (:mod:`mnesis.store.postgres.append`) against
the shared algorithm it stands in for (:func:`mnesis.store.sql.log.append`).

The same appends go through both, to two sessions of one database; every row
they write and every outcome they return must be the same (part ids and keys
taken by rank, since the two sessions draw from one sequence). A turn costs one
statement; a statement that missed another writer's commit writes nothing and
the shared algorithm runs instead, so concurrent writers still get gapless
numbers.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession
from mnesis.errors import SessionNotFoundError
from mnesis.models.message import FileRefPart, TokenUsage, ToolPart, ToolStatus
from mnesis.models.results import CompactionResult
from mnesis.store import AppendOutcome, NewMessage, PostgresStore
from mnesis.store.postgres import append as one_call
from mnesis.store.postgres.text import CHUNK_WORDS, tsvector_chunks, words
from mnesis.store.sql.backend import SQLBackend

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs the local PostgreSQL")

Append = Callable[..., Awaitable[AppendOutcome]]


def _shared(store: PostgresStore) -> Append:
    """The shared algorithm, statement by statement (what SQLite runs)."""

    async def append(session_id: str, messages: tuple[NewMessage, ...], **kw: Any) -> Any:
        return await SQLBackend.append(store, session_id, messages, **kw)

    return append


def _tool(call_id: str, **fields: Any) -> ToolPart:
    return ToolPart(tool_name="lookup", tool_call_id=call_id, input={"q": call_id}, **fields)


def _turns(b: Any, p: str) -> Iterator[tuple[tuple[NewMessage, ...], dict[str, Any]]]:
    """Appends covering what an append can hold; message ids prefixed with ``p``."""

    def message(message_id: str, *parts: Any, **kw: Any) -> NewMessage:
        kw.setdefault("text", f"text of {message_id}")
        return b.message(p + message_id, *parts, **kw)

    yield (message("u1", text="Hello, wörld: café NAÏVE naïve ﬁle ①"),), {}
    yield (
        (
            b.message(
                p + "a1",
                b.text("let me look"),
                b.part(_tool("c1"), 9),
                b.part(_tool("c2", status=ToolStatus.COMPLETED, output="done early"), 4, 3),
                b.part(_tool("c3", status=ToolStatus.ERROR, error_message="boom"), 4, 2),
                role="assistant",
                model="m",
                finish_reason="tool_calls",
                tokens=TokenUsage(input=10, output=20, cache_read=3, cache_write=1),
                cost=0.25,
            ),
        ),
        {
            "usage": TokenUsage(input=10, output=20, cache_read=3, cache_write=1),
            "cost": 0.25,
            "snapshot": b.snapshot(0),
        },
    )
    yield (
        (
            message("f1", role="assistant", status="failed", error="unknown: x"),
            message("u2", b.file_ref()),
            message("f2", role="assistant", status="failed", error="timeout: y"),
            message("a2", text="ok " * 40, role="assistant"),
        ),
        {"usage": TokenUsage(input=5, output=6, total=100), "cost": 1.5},
    )
    yield (), {}
    yield (), {"snapshot": b.snapshot(7, total=500)}  # a turn with no messages
    yield (message("f3", role="assistant", status="failed"),), {"usage": None, "cost": 2.0}
    yield (message("empty", b.text("")),), {"usage": TokenUsage(total=7)}
    long = " ".join(f"w{i % 5000}" for i in range(CHUNK_WORDS * 2 + 77)) + " same" * 300
    result = "result " * 20 + "x" * 500
    yield (
        (
            message("u3", b.text(long, 999)),
            b.message(
                p + "a3",
                b.part(_tool("c4", status=ToolStatus.COMPLETED, output=result), 4, 50),
                b.part(
                    FileRefPart(
                        content_id="sha-2",
                        path="/tmp/ünïcode/π.txt",
                        file_type="text",
                        token_count=3,
                        exploration_summary="Σ summary ≤ 3",
                    ),
                    8,
                ),
                role="assistant",
                created_at=1_700_000_999.5,
            ),
        ),
        {
            "usage": TokenUsage(input=1, output=2),
            "snapshot": b.snapshot(0).model_copy(
                update={
                    "compaction_triggered": True,
                    "compact_result": CompactionResult(
                        session_id="s",
                        summary_message_id="m",
                        level_used=2,
                        compacted_message_count=4,
                        summary_token_count=50,
                        tokens_before=1000,
                        tokens_after=100,
                        elapsed_ms=12.345678,
                        cost=1e-07,
                    ),
                }
            ),
        },
    )


async def _rows(conn: Any, session_id: str, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the session's appends wrote, ids made comparable across sessions."""

    def strip(message_id: str) -> str:
        assert message_id.startswith(prefix)
        return message_id[len(prefix) :]

    part_ids = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM parts WHERE session_id = $1 ORDER BY id", session_id
        )
    ]
    rank = {part_id: n for n, part_id in enumerate(part_ids)}
    out: dict[str, list[tuple[Any, ...]]] = {}
    out["sessions"] = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
            "total_tokens, cost, turn_count, context_version, context_rewrites "
            "FROM sessions WHERE id = $1",
            session_id,
        )
    ]
    out["messages"] = [
        (strip(r[0]), *r[1:])
        for r in await conn.fetch(
            "SELECT id, seq, role, created_at, model, status, finish_reason, error, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, "
            "cost, token_count FROM messages WHERE session_id = $1 ORDER BY seq",
            session_id,
        )
    ]
    out["parts"] = [  # c1's result time: when the test filled it
        (rank[r[0]], strip(r[1]), *r[2:11], "filled" if r[6] == "c1" and r[11] else r[11], r[12])
        for r in await conn.fetch(
            "SELECT id, message_id, idx, type, data, token_count, tool_call_id, tool_status, "
            "tool_output, tool_error, result_token_count, completed_at, pruned_at "
            "FROM parts WHERE session_id = $1 ORDER BY id",
            session_id,
        )
    ]
    out["search_index"] = sorted(
        (rank[r[0] // 2] * 2 + r[0] % 2, r[1], r[2])
        for r in await conn.fetch(
            "SELECT key, chunk, tsv::text FROM search_index WHERE session_id = $1", session_id
        )
    )
    out["context_items"] = [
        (r[0], r[1], strip(r[2]))
        for r in await conn.fetch(
            "SELECT position, kind, ref_id FROM context_items WHERE session_id = $1 "
            "ORDER BY position",
            session_id,
        )
    ]
    out["turns"] = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT turn_index, snapshot_json FROM turns WHERE session_id = $1 ORDER BY turn_index",
            session_id,
        )
    ]
    return out


async def test_one_call_writes_what_the_shared_algorithm_writes(
    pg_database: str, build: Any
) -> None:
    import asyncpg

    store = await PostgresStore(pg_database).open()
    conn = await asyncpg.connect(pg_database)
    try:
        await store.create_session(build.session("shared"))
        await store.create_session(build.session("one"))
        shared, one = _shared(store), store.append
        n = 0
        for (s_msgs, s_kw), (o_msgs, o_kw) in zip(
            _turns(build, "s-"), _turns(build, "o-"), strict=True
        ):
            n += 1
            if n == 4:  # a fill and a rewrite between appends, through the shared algorithm
                for sid, prefix in (("shared", "s-"), ("one", "o-")):
                    await store.fill_tool_results(sid, (build.result("c1", "filled"),))
                    await store.pin(sid, prefix + "u1")
            expected = await shared("shared", s_msgs, **s_kw)
            got = await one("one", o_msgs, **o_kw)
            assert got == expected, n
            assert await _rows(conn, "one", "o-") == await _rows(conn, "shared", "s-"), n
        assert await store.verify() == []
        assert [e.ref_id for e in (await store.context_entries("one"))[1]] == [
            "o-" + e.ref_id[2:] for e in (await store.context_entries("shared"))[1]
        ]
        assert [m for _, m in await store.search("one", ("naive",))] == ["o-u1"]
        assert [m for _, m in await store.search("one", ("same", "same"))] == ["o-u3"]
        assert [m for _, m in await store.search("one", ("boom",))] == ["o-a1"]
        assert [m for _, m in await store.search("one", ("sha", "2"))] == ["o-a3"]
    finally:
        await conn.close()
        await store.close()


async def test_an_unknown_session_is_refused_and_nothing_is_written(
    pg_database: str, build: Any
) -> None:
    store = await PostgresStore(pg_database).open()
    try:
        with pytest.raises(SessionNotFoundError):
            await store.append("nope", (build.message("m1"),), snapshot=build.snapshot(0))
        with pytest.raises(KeyError):
            await store.get_message("m1")
    finally:
        await store.close()


def test_the_turn_index_is_put_in_front_of_the_snapshot_json(build: Any) -> None:
    snapshot = build.snapshot(0)
    tail = one_call.turn_json_tail(snapshot)
    assert tail is not None
    numbered = snapshot.model_copy(update={"turn_index": 123}).model_dump_json()
    assert '{"turn_index":' + "123" + tail == numbered


class _Calls:
    """Statements sent through asyncpg connections (each at least one round trip)."""

    METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import asyncpg

        self.sent: list[str] = []
        for name in self.METHODS:
            original = getattr(asyncpg.Connection, name)
            monkeypatch.setattr(asyncpg.Connection, name, self._counting(original))

    def _counting(self, original: Any) -> Any:
        async def call(conn: Any, query: str, *args: Any, **kw: Any) -> Any:
            self.sent.append(query)
            return await original(conn, query, *args, **kw)

        return call


async def test_a_recorded_turn_is_one_statement(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = MnesisConfig.model_validate(
        {"compaction": {"auto": False}, "store": {"url": pg_database}}
    )
    session = await MnesisSession.create(model="openai/gpt-4o", config=config)
    try:
        await session.record("warm", "up")
        calls = _Calls(monkeypatch)
        for n in range(3):
            await session.record(f"question {n}", f"answer {n}", tokens=TokenUsage(input=3))
        assert len(calls.sent) == 3, calls.sent  # no BEGIN, COMMIT or pool reset either
        assert all(q == one_call.STATEMENT for q in calls.sent)
        assert len(await session.messages()) == 8
        assert await session._core.store.verify() == []
    finally:
        await session.close()


class _Fallbacks:
    """Appends that fell back to the shared algorithm."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        shared = SQLBackend.append

        async def counting(store: Any, *args: Any, **kw: Any) -> Any:
            self.count += 1
            return await shared(store, *args, **kw)

        monkeypatch.setattr(SQLBackend, "append", counting)


async def _lock_waiters(conn: Any) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


@pytest.mark.parametrize("other", ["commits", "rolls back"])
async def test_a_writer_committing_while_the_statement_waits_is_not_missed(
    pg_database: str, build: Any, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    import asyncpg

    store = await PostgresStore(pg_database).open()
    conn = await asyncpg.connect(pg_database)
    try:
        await store.create_session(build.session("s1"))
        await store.append("s1", (build.message("u1"),), snapshot=build.snapshot(0))
        fallbacks = _Fallbacks(monkeypatch)
        # Another writer, as the shared algorithm writes: lock, rows, the session's row.
        writer = conn.transaction()
        await writer.start()
        await conn.execute("SELECT 1 FROM sessions WHERE id = 's1' FOR NO KEY UPDATE")
        await conn.execute(
            "INSERT INTO messages (id, session_id, seq, role, created_at, status, token_count) "
            "VALUES ('other', 's1', 2, 'user', 0, 'complete', 0)"
        )
        await conn.execute(
            "INSERT INTO context_items (session_id, position, kind, ref_id) "
            "VALUES ('s1', 2, 'message', 'other')"
        )
        await conn.execute(
            "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) "
            "SELECT 's1', 2, snapshot_json, 0 FROM turns WHERE session_id = 's1'"
        )
        await conn.execute(
            "UPDATE sessions SET context_version = context_version + 1, turn_count = 2 "
            "WHERE id = 's1'"
        )
        append = asyncio.create_task(
            store.append("s1", (build.message("u3"),), snapshot=build.snapshot(0))
        )
        for _ in range(1000):  # until the statement waits for the writer's lock
            if await _lock_waiters(conn):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the append never waited for the lock")
        await (writer.commit() if other == "commits" else writer.rollback())
        outcome = await append

        first = 3 if other == "commits" else 2
        assert (outcome.seqs, outcome.positions, outcome.turn_index) == (
            (first,),
            (first,),
            first,
        )
        assert fallbacks.count == (1 if other == "commits" else 0)
        assert [m.message.seq for m in await store.get_messages("s1")] == list(range(1, first + 1))
    finally:
        await conn.close()
        await store.close()


async def test_concurrent_writers_get_gapless_numbers(pg_database: str, build: Any) -> None:
    stores = [await PostgresStore(pg_database, max_size=4).open() for _ in range(3)]
    try:
        await stores[0].create_session(build.session("s1"))

        async def writer(w: int) -> list[AppendOutcome]:
            out = []
            for i in range(15):
                messages = (
                    build.message(f"w{w}-{i}-u"),
                    build.message(f"w{w}-{i}-f", role="assistant", status="failed"),
                    build.message(f"w{w}-{i}-a", role="assistant"),
                )
                store = stores[w % len(stores)]
                out.append(
                    await store.append(
                        "s1", messages, usage=TokenUsage(input=1), snapshot=build.snapshot(0)
                    )
                )
            return out

        outcomes = [o for os_ in await asyncio.gather(*map(writer, range(6))) for o in os_]
        assert sorted(s for o in outcomes for s in o.seqs) == list(range(1, 6 * 15 * 3 + 1))
        assert sorted(p for o in outcomes for p in o.positions) == list(range(1, 6 * 15 * 2 + 1))
        assert sorted(o.turn_index or 0 for o in outcomes) == list(range(1, 6 * 15 + 1))
        assert max(o.counters.turn_count for o in outcomes if o.counters) == 6 * 15
        session = await stores[1].get_session("s1")
        assert (session.turn_count, session.tokens.input) == (90, 90)
        assert await stores[2].verify() == []
    finally:
        for store in stores:
            await store.close()


# -- the index words: the fast paths give what the plain algorithm gives ----------------


def _reference_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [w[:400] for w in re.findall(r"[^\W_]+", folded)]


def _reference_chunks(text: str) -> list[str]:
    from mnesis.store.postgres.text import CHUNK_CHARS, MAX_POSITIONS, OVERLAP

    def literal(word: str) -> str:
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    all_words = _reference_words(text)
    out, start = [], 0
    while True:
        end, chars = start, 0
        positions: dict[str, list[int]] = {}
        while end < len(all_words) and end - start < CHUNK_WORDS and chars < CHUNK_CHARS:
            seen = positions.setdefault(all_words[end], [])
            if len(seen) == MAX_POSITIONS:
                break
            seen.append(end - start + 1)
            chars += len(all_words[end]) + 1
            end += 1
        out.append(
            " ".join(f"{literal(w)}:{','.join(map(str, ps))}" for w, ps in positions.items())
        )
        if end >= len(all_words):
            return out
        start = max(end - OVERLAP, start + 1)


def _texts() -> list[str]:
    rng = random.Random(13)
    alphabet = [chr(c) for c in range(128)] + list("éÉñßœŒﬁ①²Ωπ‐—İıǅK") + ["e\u0301", "\u00a0"]
    texts = ["", " " * 1000, "-é " * 500, "x" * 1000 + " y", "a " * 300, "ﷺ" * 30]
    texts += [("a " * 257 + "b ") * 3, "A" * 500 + "é"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(400))) for _ in range(300)]
    texts += [
        "".join(rng.choice(alphabet[:128]) for _ in range(rng.randrange(900))) for _ in range(300)
    ]
    texts += [" ".join(rng.choice(["a", "b", "c", "dd"]) for _ in range(CHUNK_WORDS + 500))]
    texts += [" ".join("w" + str(rng.randrange(50)) for _ in range(3000))]
    return texts


def test_index_words_match_the_plain_algorithm() -> None:
    for text in _texts():
        assert words(text) == _reference_words(text), text


async def test_index_vectors_store_what_the_plain_algorithm_stores(pg_database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_database)
    try:
        for text in _texts():
            ours, reference = list(tsvector_chunks(text)), _reference_chunks(text)
            assert len(ours) == len(reference), text[:80]
            same = await conn.fetchval(
                "SELECT array(SELECT v::tsvector::text FROM unnest($1::text[]) v) "
                "= array(SELECT v::tsvector::text FROM unnest($2::text[]) v)",
                ours,
                reference,
            )
            assert same, text[:80]
    finally:
        await conn.close()
