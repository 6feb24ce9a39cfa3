"""grep / describe / expand: every stored message stays reachable, by the
application and by the model."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from mnesis import MnesisConfig, MnesisSession, MockProvider, ToolPart
from mnesis.errors import InvalidInputError, UnknownIdError
from mnesis.llm.base import LLMRequest
from mnesis.llm.mock import MockReply, MockToolCall

MODEL = "openai/gpt-4o"
VOCAB = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()


def filler(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def summariser(request: LLMRequest) -> str:
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content:
        return "Summary: an exchange of assorted nature words."
    return "noted"


def small() -> MnesisConfig:
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500},
        }
    )


async def test_grep_finds_verbatim_and_summarised_messages(db_path: str) -> None:
    rng = random.Random(1)
    async with MnesisSession.open(
        model=MODEL, config=small(), db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        await session.record("The launch code is Zebra-9431, keep it safe.", "Understood.")
        for _ in range(60):
            await session.record(filler(rng, 80), filler(rng, 40))
        await session.record("Remind me about the Zebra later", "Sure.")
        await session.compact()
        result = await session.grep("zebra")
        assert [m.seq for m in result] == sorted(m.seq for m in result)
        old, recent = result.matches[0], result.matches[-1]
        assert "Zebra-9431" in old.text and "Zebra-9431" in old.snippet
        assert old.summary_id is not None and old.summary_id.startswith("sum_")
        assert recent.summary_id is None  # still verbatim in the context
        assert old.role == "user" and old.message_id.startswith("msg_")
        # Word-start matching: "ebra" is not the start of a word.
        assert len(await session.grep("ebra-9431")) == 0
        assert len(await session.grep("ZEBRA-94")) == 1


async def test_grep_is_paginated_and_ordered(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        for i in range(25):
            await session.record(f"beacon number {i}", "ok")
        first = await session.grep("beacon", limit=10)
        second = await session.grep("beacon", limit=10, offset=first.next_offset or 0)
        third = await session.grep("beacon", limit=10, offset=second.next_offset or 0)
        seqs = [m.seq for page in (first, second, third) for m in page]
        assert seqs == sorted(seqs) and len(seqs) == 25
        assert (first.next_offset, second.next_offset, third.next_offset) == (10, 20, None)


async def test_regex_grep_and_its_errors(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        await session.record("order #A-1234 shipped", "ok")
        await session.record("order #B-99 pending", "ok")
        result = await session.grep(r"#[A-Z]-\d{4}\b", regex=True)
        assert [m.text.split()[1] for m in result] == ["#A-1234"]
        with pytest.raises(InvalidInputError, match="invalid regular expression"):
            await session.grep("(unclosed", regex=True)
        with pytest.raises(InvalidInputError):
            await session.grep("")
        with pytest.raises(InvalidInputError):
            await session.grep("x", limit=0)


async def test_a_catastrophic_regex_cannot_hang_the_process(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        session._recall.regex_budget = 0.3
        await session.record("a" * 5_000 + "!", "ok")
        start = time.monotonic()
        result = await session.grep(r"(a+)+$", regex=True)
        assert time.monotonic() - start < 5
        assert not result.complete


async def test_grep_within_a_summary_and_cross_session_isolation(db_path: str) -> None:
    rng = random.Random(2)
    async with (
        MnesisSession.open(
            model=MODEL, config=small(), db_path=db_path, provider=MockProvider(summariser)
        ) as session,
        MnesisSession.open(
            model=MODEL, db_path=db_path, provider=MockProvider(summariser)
        ) as other,
    ):
        await other.record("a secret orchid in the other session", "ok")
        await session.record("an orchid in the first span", "ok")
        for _ in range(40):
            await session.record(filler(rng, 80), filler(rng, 40))
        await session.record("a later orchid, verbatim", "ok")
        compacted = await session.compact()
        everywhere = await session.grep("orchid")
        assert len(everywhere) == 2  # the other session's message is not ours
        summary_id = everywhere[0].summary_id
        assert summary_id is not None
        within = await session.grep("orchid", summary_id=summary_id)
        assert [m.message_id for m in within] == [everywhere[0].message_id]
        other_msg = (await other.messages())[0].id
        with pytest.raises(UnknownIdError):
            await session.describe(other_msg)
        with pytest.raises(UnknownIdError):
            await other.expand(compacted.summary_message_id)


async def test_describe_and_expand_walk_the_dag_back_to_the_originals(db_path: str) -> None:
    rng = random.Random(3)
    originals: list[tuple[str, str]] = []
    async with MnesisSession.open(
        model=MODEL, config=small(), db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        for _ in range(300):
            user, reply = filler(rng, 60), filler(rng, 30)
            originals += [(user, "user"), (reply, "assistant")]
            await session.record(user, reply)
        await session.wait_for_compaction()  # inspect a settled DAG, not one mid-pass
        context = await session.context_for_next_turn()
        summaries = [
            m["content"].split()[1] for m in context if str(m["content"]).startswith("[Summary ")
        ]
        assert summaries
        covered: list[str] = []
        for summary_id in summaries:
            described = await session.describe(summary_id)
            assert described.kind == "summary" and described.in_context
            assert described.parent_id is None
            page = await session.expand(summary_id, limit=7)
            assert page.total == described.message_count
            messages = list(page.messages)
            while page.next_offset is not None:
                page = await session.expand(summary_id, limit=7, offset=page.next_offset)
                messages += page.messages
            assert [m.message.seq for m in messages] == list(
                range(described.first_seq, described.last_seq + 1)
            )
            covered += [m.text_content() for m in messages]
        condensed = [await session.describe(s) for s in summaries]
        deep = next(d for d in condensed if d.node_kind == "condensed")
        child = await session.describe(deep.child_ids[0])
        assert child.kind == "summary" and child.parent_id == deep.id and not child.in_context
        # Byte-identical originals, in order, for everything summarised.
        assert covered == [text for text, _ in originals[: len(covered)]]
        message = await session.describe((await session.messages())[0].id)
        assert message.kind == "message" and message.summary_id in summaries
        assert message.parent_summary_id is not None
        with pytest.raises(UnknownIdError):
            await session.describe("sum_does_not_exist")
        with pytest.raises(UnknownIdError):
            await session.expand("sum_does_not_exist")


async def test_planted_facts_survive_many_compactions(db_path: str) -> None:
    """Thousands of turns, facts planted at random; grep finds every one and
    expand returns it byte-identical."""
    rng = random.Random(4)
    planted: dict[str, str] = {}
    async with MnesisSession.open(
        model=MODEL, config=small(), db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        for turn in range(2_000):
            user = filler(rng, 40)
            if turn % 97 == 13:
                key = f"fact{turn}x{rng.randint(1000, 9999)}"
                user = f"{user} Remember that {key} equals {rng.random():.6f}."
                planted[key] = user
            await session.record(user, filler(rng, 20))
        assert len(planted) > 15
        passes = 0
        for key, original in planted.items():
            result = await session.grep(key)
            assert len(result) == 1, key
            match = result[0]
            assert match.text == original
            if match.summary_id is not None:
                passes += 1
                page = await session.expand(match.summary_id)
                assert original in [m.text_content() for m in page.messages]
        assert passes >= len(planted) - 2  # nearly all were summarised away
        assert await session.verify() == []


async def test_tool_calls_and_their_results_are_searchable(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(summariser)
    ) as session:
        call = ToolPart(tool_name="fetch_invoice", tool_call_id="t1", input={"number": "INV-77"})
        await session.record("get the invoice", [call])
        await session.record_tool_result("t1", "Invoice INV-77 totals 4,200 kroner")
        assert len(await session.grep("fetch_invoice")) == 1
        assert len(await session.grep("4,200 kroner")) == 1


async def test_the_model_can_use_the_memory_tools(db_path: str) -> None:
    rng = random.Random(5)
    steps: list[str] = []

    def model(request: LLMRequest) -> MockReply:
        content = str(request.messages[-1].get("content") or "")
        if "<transcript>" in content:
            return MockReply(text="Summary: nature words.")
        last = request.messages[-1]
        if last["role"] == "tool":
            steps.append(content)
            if ", in summary " in content:
                summary_id = content.split("in summary ")[1].split("]")[0]
                return MockReply(
                    tool_calls=(MockToolCall("lcm_expand", {"summary_id": summary_id}),)
                )
            return MockReply(text="The password was " + content.split("password is ")[1][:8])
        if request.tools and "password" in content:
            return MockReply(tool_calls=(MockToolCall("lcm_grep", {"pattern": "password"}),))
        return MockReply(text="ok")

    async with MnesisSession.open(
        model=MODEL, config=small(), db_path=db_path, provider=MockProvider(model)
    ) as session:
        await session.record("The wifi password is swordfsh, remember it.", "Noted.")
        for _ in range(40):
            await session.record(filler(rng, 80), filler(rng, 40))
        await session.compact()
        context = await session.context_for_next_turn()
        assert not any("swordfsh" in str(m["content"]) for m in context)
        names = [t["function"]["name"] for t in session.memory_tools()]
        assert names == ["lcm_grep", "lcm_describe", "lcm_expand", "lcm_search"]
        result = await session.send("What was the wifi password?", memory_tools=True)
        assert result.text == "The password was swordfsh"
        assert result.steps == 3
        stored = await session.messages()
        tools_used = [p.tool_name for m in stored for p in m.tool_parts()]
        assert tools_used[-2:] == ["lcm_grep", "lcm_expand"]


def test_a_version_1_database_gains_a_search_index_on_upgrade(tmp_path: Path) -> None:
    import asyncio

    from mnesis.store.migrations import load_migrations
    from mnesis.store.sqlite.migrate import split_statements

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at REAL NOT NULL)"
    )
    for statement in split_statements(load_migrations("sqlite")[0].sql):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")
    conn.execute(
        "INSERT INTO sessions (id, agent, model, system_prompt, config_json, created_at,"
        " updated_at) VALUES ('old', 'default', ?, 'sys', '{}', 0, 0)",
        (MODEL,),
    )
    conn.execute(
        "INSERT INTO messages (id, session_id, seq, role, created_at, status, token_count)"
        " VALUES ('m1', 'old', 1, 'user', 0, 'complete', 5)"
    )
    conn.execute(
        "INSERT INTO parts (message_id, session_id, idx, type, data, token_count) VALUES"
        " ('m1', 'old', 0, 'text', '{\"text\":\"legacy walrus memo\",\"type\":\"text\"}', 5)"
    )
    conn.execute("INSERT INTO context_items VALUES ('old', 1, 'message', 'm1')")
    conn.close()

    async def upgraded() -> Any:
        session = await MnesisSession.load("old", db_path=str(db), provider=MockProvider())
        found = await session.grep("walrus")
        problems = await session.verify()
        await session.close()
        return found, problems

    found, problems = asyncio.run(upgraded())
    assert [m.message_id for m in found] == ["m1"]
    assert problems == []
    versions = [r[0] for r in sqlite3.connect(db).execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, len(load_migrations("sqlite")) + 1))
