"""Stored vectors at the edges: writers committing out of order, erasure while a
process holds a copy of the vectors or is embedding, and an embedder that
misbehaves. On both backends unless the edge is one backend's own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from mnesis.errors import LLMPermanentError, LLMTransientError
from mnesis.recall.search import HybridSearch
from mnesis.recall.vectors import VectorCache
from mnesis.session.embedding import EmbeddingWorker
from mnesis.store import PostgresStore, SQLiteStore, Store
from mnesis.store.base import VectorIndex
from mnesis.store.vectors import NewEmbedding, vector_bytes
from tests.store.test_embeddings import WordHashEmbedder

Build = Any


async def _embed_all(store: Store, embedder: Any, session_id: str = "s1") -> EmbeddingWorker:
    worker = EmbeddingWorker(store, embedder, quiet=0.0)
    worker.watch(session_id)
    await worker.drain()
    return worker


async def test_vectors_two_writers_commit_out_of_order_all_reach_a_search_copy(
    pg_database: str, build: type[Build]
) -> None:
    import asyncpg

    first = await PostgresStore(pg_database).open()
    second = await PostgresStore(pg_database).open()
    reader = await PostgresStore(pg_database).open()
    raw = await asyncpg.connect(pg_database)
    try:
        await first.create_session(build.session())
        await first.append("s1", (build.message("m1"), build.message("m2")))
        # The first writer takes its id, then stalls before committing (held by the test).
        await raw.execute(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.item = 'b-slow' THEN PERFORM pg_advisory_xact_lock(777); END IF; "
            "RETURN NEW; END $$"
        )
        await raw.execute(
            "CREATE TRIGGER stall BEFORE INSERT ON embeddings FOR EACH ROW EXECUTE FUNCTION stall()"
        )
        await raw.execute("SELECT pg_advisory_lock(777)")
        slow = asyncio.ensure_future(
            first.save_embeddings(
                "e", (NewEmbedding("s1", "b-slow", 0, "m1", vector_bytes([1.0, 0.0])),)
            )
        )

        async def waiting_locks() -> int:
            return int(
                await raw.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )

        for _ in range(6000):  # until the first writer waits in its transaction
            if await waiting_locks() >= 1:
                break
            await asyncio.sleep(0.01)
        fast = asyncio.ensure_future(
            second.save_embeddings(
                "e", (NewEmbedding("s1", "b-fast", 0, "m2", vector_bytes([0.0, 1.0])),)
            )
        )
        for _ in range(6000):  # until the second has committed or waits its turn
            if fast.done() or await waiting_locks() >= 2:
                break
            await asyncio.sleep(0.01)
        copy = VectorCache(reader, "e", 2)
        await copy.session("s1")  # a search meanwhile
        await raw.execute("SELECT pg_advisory_unlock(777)")
        await asyncio.gather(slow, fast)
        held = await copy.session("s1")
        assert sorted(held.items) == ["b-fast", "b-slow"]
    finally:
        await raw.close()
        for store in (first, second, reader):
            await store.close()


async def test_a_message_stored_after_an_erasure_is_embedded_and_found_by_meaning(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    embedder = WordHashEmbedder()
    await store.create_session(build.session())
    await store.append(
        "s1", tuple(build.message(f"m{i}", text=f"plain turn {i}") for i in range(3))
    )
    worker = await _embed_all(store, embedder)
    copy = VectorCache(store, embedder.name, embedder.dimensions)
    await copy.session("s1")  # a search read the vectors before the erasure
    await store.erase_latest_message("s1", "m2")
    await store.append("s1", (build.message("n2", text="zebra crossing lights"),))
    worker.notice()
    await worker.drain()
    await worker.close()
    rows = await store.load_embeddings("s1", embedder.name)
    assert sorted(r.message_id or "" for r in rows) == ["m0", "m1", "n2"]
    held = await copy.session("s1")
    assert "n2" in held.message_ids
    found = await HybridSearch(store, embedder).search("zebra crossing lights", ["s1"])
    assert found[0].id == "n2" and found[0].matched_by == "both"


async def test_a_vector_computed_before_its_message_was_erased_is_not_stored(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    await store.append("s1", (build.message("m1"), build.message("m2", text="secret words")))
    (task,) = (await store.embedding_backlog("s1", "e", after_seq=1)).tasks
    await store.erase_latest_message("s1", "m2")  # while the worker computes the vector
    await store.save_embeddings(
        "e", (NewEmbedding("s1", task.item, 0, task.message_id, vector_bytes([1.0])),)
    )
    assert await store.load_embeddings("s1", "e") == []


async def test_a_search_after_another_process_erased_the_session_does_not_fail(
    store: Store, build: type[Build]
) -> None:
    embedder = WordHashEmbedder()
    await store.create_session(build.session())
    await store.append("s1", (build.message("m1", text="alpha beta"),))
    await store.commit_summary("s1", build.summary("sum_1", "m1", text="alpha beta gamma"))
    await (await _embed_all(store, embedder)).close()
    search = HybridSearch(store, embedder)
    assert {m.id for m in await search.search("alpha beta", ["s1"])} >= {"sum_1"}
    other = await (
        PostgresStore(store.url) if isinstance(store, PostgresStore) else SQLiteStore(store.path)
    ).open()
    try:
        assert isinstance(other, VectorIndex)
        await other.erase_session("s1")
    finally:
        await other.close()
    result = await search.search("alpha beta", ["s1"])
    assert len(result) == 0


class Misbehaving(WordHashEmbedder):
    """Returns what ``answer`` makes of the right vectors, once; then behaves."""

    def __init__(self, answer: Any) -> None:
        super().__init__(dimensions=4)
        self.answer = answer
        self.bad = 1

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        good = await super().embed(texts)
        if self.bad:
            self.bad -= 1
            return list(self.answer(good))
        return good


@pytest.mark.parametrize(
    "answer",
    [
        lambda good: good[:-1],  # one vector short
        lambda good: [[*v, 0.0] for v in good],  # the wrong size
        lambda good: [[float("nan")] * 4 for _ in good],  # not numbers
    ],
    ids=["too-few", "wrong-size", "nan"],
)
async def test_a_misbehaving_embedder_is_logged_and_its_batch_embedded_again(
    store: Store, build: type[Build], answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    await store.append("s1", (build.message("m1", text="one two"), build.message("m2")))
    embedder = Misbehaving(answer)
    worker = EmbeddingWorker(store, embedder, quiet=0.0)
    with caplog.at_level(logging.WARNING, logger="mnesis.session"):
        worker.watch("s1")
        await worker.drain()  # returns on the failure; the worker retries after a pause
    assert worker.stats.errors == 1 and "background embedding failed" in caplog.text
    assert await store.load_embeddings("s1", embedder.name) == []  # nothing bad was stored
    await worker.drain()
    await worker.close()
    rows = await store.load_embeddings("s1", embedder.name)
    assert len(rows) == 2 and all(len(r.vector) == 16 for r in rows)


class Refusing(WordHashEmbedder):
    """Refuses every batch holding a text with "poison" in it, as a provider might;
    fails ``outages`` calls first as a provider that is down would."""

    def __init__(self, outages: int = 0) -> None:
        super().__init__(dimensions=4)
        self.outages = outages

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.outages:
            self.outages -= 1
            raise LLMTransientError("the provider is down")
        if any("poison" in text for text in texts):
            raise LLMPermanentError("the provider refuses this text")
        return await super().embed(texts)


async def _three_messages(store: Store, build: type[Build]) -> None:
    await store.create_session(build.session())
    await store.append(
        "s1",
        (
            build.message("m1", text="alpha beta"),
            build.message("m2", text="a poison pill"),
            build.message("m3", text="gamma delta"),
        ),
    )


async def _vector_sizes(store: Store, embedder: WordHashEmbedder) -> dict[str | None, int]:
    assert isinstance(store, VectorIndex)
    return {r.message_id: len(r.vector) for r in await store.load_embeddings("s1", embedder.name)}


async def test_a_text_the_embedder_always_refuses_does_not_hold_up_its_session(
    store: Store, build: type[Build], caplog: pytest.LogCaptureFixture
) -> None:
    await _three_messages(store, build)
    embedder = Refusing()
    worker = EmbeddingWorker(store, embedder, quiet=0.0, backoff=0.001)
    with caplog.at_level(logging.WARNING, logger="mnesis.session"):
        worker.watch("s1")
        for _ in range(EmbeddingWorker.GIVE_UP_AFTER + 2):
            await worker.drain()
    await worker.close()
    assert worker.stats.skipped == 1
    assert "search finds it by its words only" in caplog.text
    assert await _vector_sizes(store, embedder) == {"m1": 16, "m2": 0, "m3": 16}


async def test_a_provider_outage_gives_up_on_nothing(store: Store, build: type[Build]) -> None:
    await _three_messages(store, build)
    embedder = Refusing(outages=2 * EmbeddingWorker.GIVE_UP_AFTER)
    worker = EmbeddingWorker(store, embedder, quiet=0.0, backoff=0.001)
    worker.watch("s1")
    for _ in range(4 * EmbeddingWorker.GIVE_UP_AFTER):
        await worker.drain()
        if embedder.outages == 0 and worker.stats.skipped:
            break
    await worker.close()
    assert worker.stats.errors >= 2 * EmbeddingWorker.GIVE_UP_AFTER
    # Only the text the provider refuses is given up on, never one an outage hit.
    assert await _vector_sizes(store, embedder) == {"m1": 16, "m2": 0, "m3": 16}
