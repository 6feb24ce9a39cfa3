"""search(): hybrid recall by words and meaning, over a session's whole history,
a store's sessions, the model's lcm_search tool and the CLI; bad input refused."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

import mnesis
from mnesis import InvalidInputError, MnesisConfig, MnesisSession, MockProvider, ToolPart
from mnesis.errors import ConfigError, SessionNotFoundError
from mnesis.models.message import TextPart
from mnesis.recall import Recall, memory_tool_handlers
from mnesis.recall.search import HybridSearch, query_terms
from mnesis.recall.vectors import MAX_CHUNKS, text_chunks
from mnesis.session import embedding as session_embedding
from mnesis.session.embedding import EmbeddingWorker
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore
from mnesis.store.base import NewSummary

# A stand-in model that knows a few synonyms: words map to concepts, concepts to axes.
CONCEPTS = {
    "invoicing": "billing",
    "billing": "billing",
    "invoice": "billing",
    "server": "machine",
    "box": "machine",
    "host": "machine",
    "port": "port",
    "listen": "port",
    "8443": "port",
    "sister": "sibling",
    "sibling": "sibling",
    "brother": "sibling",
    "lives": "home",
    "live": "home",
    "lisbon": "home",
}
AXES = [*sorted(set(CONCEPTS.values())), "other"]


class ConceptEmbedder:
    name = "concepts-v1"
    dimensions = len(AXES)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * len(AXES)
            for word in query_terms(text):
                v[AXES.index(CONCEPTS.get(word, "other"))] += 1.0 if word in CONCEPTS else 0.1
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v] if any(v) else [0.0] * (len(AXES) - 1) + [1.0])
        return out


def text(message_id: str, body: str, role: str = "user") -> NewMessage:
    return NewMessage(
        id=message_id, role=role, parts=(NewPart(TextPart(text=body), 5),), created_at=1.0
    )  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = await SQLiteStore(tmp_path / "s.db").open()
    await opened.create_session(
        SessionRecord(
            id="s1",
            model="m",
            agent="a",
            parent_id=None,
            system_prompt="p",
            config_json="{}",
            created_at=1.0,
        )
    )
    yield opened
    await opened.close()


FACTS = [
    "The invoicing server only accepts TLS on 8443.",
    "We should water the tomatoes daily in July.",
    "My sister Ophelia moved to Lisbon last year.",
    "The quarterly report is due on Friday.",
]


async def embedded(store: SQLiteStore) -> None:
    worker = EmbeddingWorker(store, ConceptEmbedder(), quiet=0.0)
    worker.watch("s1")
    await worker.drain()
    await worker.close()


async def test_a_paraphrase_is_found_by_meaning_where_words_find_nothing(store) -> None:  # type: ignore[no-untyped-def]
    await store.append("s1", tuple(text(f"m{i}", f) for i, f in enumerate(FACTS)))
    await embedded(store)
    search = HybridSearch(store, ConceptEmbedder())
    result = await search.search("which port does the billing box use?", ["s1"], limit=2)
    assert result.semantic and result[0].id == "m0" and result[0].matched_by == "meaning"
    assert result[0].snippet.startswith("The invoicing server")
    words_only = await HybridSearch(store, None).search("which billing box?", ["s1"])
    assert not words_only.semantic and len(words_only) == 0


async def test_messages_not_embedded_yet_are_found_by_their_words(store) -> None:  # type: ignore[no-untyped-def]
    await store.append("s1", (text("m0", FACTS[0]),))
    await embedded(store)
    await store.append("s1", (text("m1", "The tomatoes need staking"),))
    result = await HybridSearch(store, ConceptEmbedder()).search("tomatoes", ["s1"])
    assert result[0].id == "m1" and result[0].matched_by == "words"


async def test_summarised_messages_tool_outputs_and_summary_texts_are_searched(store) -> None:  # type: ignore[no-untyped-def]
    call = ToolPart(
        tool_name="lookup",
        tool_call_id="c1",
        input={"q": "hosts"},
        output="billing host listens on 8443",
        status="completed",
    )
    await store.append(
        "s1",
        (
            text("m0", "My sister lives abroad"),
            NewMessage(id="m1", role="assistant", parts=(NewPart(call, 5),), created_at=1.0),
        ),
    )
    await store.commit_summary(
        "s1",
        NewSummary(
            id="sum_1",
            kind="leaf",
            depth=0,
            level_used=1,
            text="They discussed a sibling.",
            token_count=4,
            sources=("m0", "m1"),
            first_seq=1,
            last_seq=2,
            message_count=2,
            created_at=2.0,
        ),
    )
    await embedded(store)
    search = HybridSearch(store, ConceptEmbedder())
    port = await search.search("port of the billing machine", ["s1"], limit=1)
    assert port[0].id == "m1" and port[0].summary_id == "sum_1"
    assert "8443" in port[0].snippet
    kinds = {m.kind: m for m in reversed((await search.search("sibling", ["s1"])).matches)}
    assert kinds["summary"].id == "sum_1" and kinds["summary"].summary_id is None
    assert kinds["summary"].role == "summary"
    assert kinds["message"].id == "m0" and kinds["message"].summary_id == "sum_1"


async def test_pages_follow_each_other_without_overlap(store) -> None:  # type: ignore[no-untyped-def]
    await store.append("s1", tuple(text(f"m{i}", f"note {i} about tomatoes") for i in range(25)))
    search = HybridSearch(store, None)
    first = await search.search("tomatoes", ["s1"], limit=10)
    second = await search.search("tomatoes", ["s1"], limit=10, offset=first.next_offset or 0)
    last = await search.search("tomatoes", ["s1"], limit=10, offset=20)
    ids = [m.id for m in (*first, *second, *last)]
    assert len(ids) == len(set(ids)) == 25 and last.next_offset is None


@pytest.mark.parametrize(
    ("query", "page", "message"),
    [
        ("", {}, "non-empty query"),
        ("   ", {}, "non-empty query"),
        ("x" * 2_001, {}, "limited to"),
        ("ok", {"limit": 0}, "limit"),
        ("ok", {"limit": 101}, "limit"),
        ("ok", {"limit": True}, "whole number"),
        ("ok", {"offset": -1}, "offset"),
        ("ok", {"offset": 10_001}, "offset"),
    ],
)
async def test_bad_queries_and_pages_are_refused(store, query, page, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match=message):
        await HybridSearch(store, None).search(query, ["s1"], **page)


def test_long_texts_are_embedded_in_a_few_chunks() -> None:
    assert text_chunks("   ") == []
    assert text_chunks("one two") == ["one two"]
    chunks = text_chunks("word " * 5_000)
    assert len(chunks) == MAX_CHUNKS and all(len(c) <= 1_000 for c in chunks)
    assert query_terms("Which port does the BILLING box listen on? port") == [
        "port",
        "billing",
        "box",
        "listen",
    ]


async def test_lcm_search_lists_matches_and_the_next_page(store) -> None:  # type: ignore[no-untyped-def]
    await store.append("s1", tuple(text(f"m{i}", f"tomatoes {i}") for i in range(12)))
    recall = Recall(store, "s1")
    handler = memory_tool_handlers(recall, max_chars=2_000)["lcm_search"]
    page = await handler("tomatoes")
    assert page.count("[m") == 10 and "call lcm_search with offset=10" in page
    assert "verbatim in context" in page
    assert (await handler("tomatoes", offset=10)).count("[m") == 2
    assert await handler("nothing-like-this") == "no matches"
    with pytest.raises(InvalidInputError):
        await handler("")


def config(embedder: str) -> MnesisConfig:
    return MnesisConfig.model_validate({"recall": {"embedder": embedder}})


async def test_without_the_extra_search_uses_words_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mnesis.llm.embedders as embedders

    monkeypatch.setattr(embedders, "_missing_modules", lambda: ["numpy"])
    monkeypatch.setattr(session_embedding, "_embedders", {})
    monkeypatch.setattr(session_embedding, "_warned", False)
    db = str(tmp_path / "w.db")
    with caplog.at_level(logging.WARNING, logger="mnesis.session"):
        for _ in range(2):
            async with MnesisSession.open(
                model="mock/m", db_path=db, provider=MockProvider(), config=config("auto")
            ) as session:
                await session.record("The tomatoes need water", "ok")
                result = await session.search("tomatoes")
                assert not result.semantic and result[0].role == "user"
    hints = [r for r in caplog.records if "mnesis[semantic]" in r.getMessage()]
    assert len(hints) == 1
    with pytest.raises(ConfigError, match=r"mnesis\[semantic\]"):
        await MnesisSession.create(
            model="mock/m", db_path=db, provider=MockProvider(), config=config("local")
        )


async def test_an_embedder_that_cannot_be_used_is_refused_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mnesis.llm.embedders as embedders

    monkeypatch.setattr(embedders, "_missing_modules", lambda: ["numpy"])
    monkeypatch.setattr(session_embedding, "_embedders", {})
    db = str(tmp_path / "r.db")
    async with MnesisSession.open(model="mock/m", db_path=db, provider=MockProvider()) as kept:
        session_id = kept.id
    with pytest.raises(ConfigError, match=r"mnesis\[semantic\]"):
        await MnesisSession.create(
            model="mock/m", db_path=db, provider=MockProvider(), config=config("local")
        )
    assert [s.id for s in await MnesisSession.list_sessions(db)] == [session_id]
    with pytest.raises(ConfigError, match=r"mnesis\[semantic\]"):
        await MnesisSession.load(session_id, config("local"), db, provider=MockProvider())


def test_the_embedder_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="embedder"):
        config("")
    assert MnesisConfig().recall.embedder == "auto"


async def test_the_offline_default_finds_a_paraphrase_in_a_session(tmp_path: Path) -> None:
    async with MnesisSession.open(
        model="mock/m",
        db_path=str(tmp_path / "o.db"),
        provider=MockProvider(),
        config=config("local"),
    ) as session:
        fact = await session.record(FACTS[0], "Noted.")
        for line in FACTS[1:]:
            await session.record(line, "Noted.")
        await session.wait_for_embeddings()
        result = await session.search("Which port does the billing box listen on?")
        assert result.semantic and result[0].id == fact.user_message_id


async def test_search_across_sessions_and_unknown_sessions(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    ids = []
    for line in ("The tomatoes need water", "Buy more tomatoes"):
        async with MnesisSession.open(
            model="mock/m", db_path=db, provider=MockProvider(), config=config("none")
        ) as session:
            await session.record(line, "ok")
            ids.append(session.id)
    found = await mnesis.search("tomatoes", db_path=db, config=config("none"))
    assert {m.session_id for m in found} == set(ids)
    one = await mnesis.search("tomatoes", [ids[0]], db_path=db, config=config("none"))
    assert {m.session_id for m in one} == {ids[0]}
    with pytest.raises(SessionNotFoundError):
        await mnesis.search("tomatoes", ["sess_nope"], db_path=db, config=config("none"))
    with pytest.raises(InvalidInputError, match="list of session ids"):
        await mnesis.search("tomatoes", ids[0], db_path=db, config=config("none"))


def test_mnesis_search_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from mnesis.cli.main import main

    db = str(tmp_path / "c.db")

    async def fill() -> None:
        async with MnesisSession.open(
            model="mock/m", db_path=db, provider=MockProvider(), config=config("none")
        ) as session:
            await session.record("The tomatoes need water", "ok")

    asyncio.run(fill())
    assert main(["search", "tomatoes", "--db", db, "--limit", "1"]) == 0
    assert "The tomatoes need water" in capsys.readouterr().out
