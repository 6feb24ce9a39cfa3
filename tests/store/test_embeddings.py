"""Stored vectors for meaning-based recall, on both backends: the backlog, saving,
loading, per-embedder keys, summaries; and a worker killed mid-backlog loses
nothing it stored."""

from __future__ import annotations

import asyncio
import hashlib
import math
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mnesis.models.message import ToolPart
from mnesis.session.embedding import EmbeddingWorker
from mnesis.store import SQLiteStore, Store
from mnesis.store.base import VectorIndex
from mnesis.store.vectors import (
    NewEmbedding,
    body_item,
    check_embedder_name,
    vector_bytes,
    vector_from_bytes,
)

Build = Any


class WordHashEmbedder:
    """A deterministic stand-in for a model: each word hashed to a dimension."""

    def __init__(self, name: str = "word-hash", dimensions: int = 16) -> None:
        self._name = name
        self._dimensions = dimensions
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for text in texts:
            v = [0.0] * self._dimensions
            for word in text.lower().split():
                v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self._dimensions] += 1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


async def _items(store: Store, session_id: str, embedder: str) -> set[str]:
    assert isinstance(store, VectorIndex)
    found = await store.embedding_backlog(session_id, embedder, limit=1_000)
    return {t.item for t in found.tasks}


async def test_every_backend_holds_vectors(store: Store) -> None:
    assert isinstance(store, VectorIndex)


async def test_backlog_lists_each_body_until_its_vector_is_saved(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    call = build.part(
        ToolPart(
            tool_name="lookup", tool_call_id="c1", input={}, output="42 rows", status="completed"
        )
    )
    await store.append(
        "s1",
        (
            build.message("m1", text="the invoicing server uses port 8443"),
            build.message("m2", build.text("looking"), call, role="assistant"),
        ),
    )
    backlog = await store.embedding_backlog("s1", "e", limit=10)
    assert [t.message_id for t in backlog.tasks] == ["m1", "m2", "m2", "m2"]
    assert backlog.last_seq == 2 and backlog.first_open_seq is None
    texts = {t.text for t in backlog.tasks}
    assert "the invoicing server uses port 8443" in texts and "42 rows" in texts
    rows = tuple(
        NewEmbedding("s1", t.item, 0, t.message_id, vector_bytes([1.0, 0.0])) for t in backlog.tasks
    )
    await store.save_embeddings("e", rows)
    assert await _items(store, "s1", "e") == set()
    # Another embedder's vectors are its own: a model change embeds everything anew.
    assert len(await _items(store, "s1", "other")) == 4
    # After the last message scanned, nothing is left to read.
    later = await store.embedding_backlog("s1", "e", after_seq=2)
    assert later.tasks == () and later.last_seq == 2


async def test_a_tool_result_filled_later_joins_the_backlog(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    await store.append(
        "s1", (build.message("m1"), build.message("m2", build.tool_call("c1"), role="assistant"))
    )
    first = await store.embedding_backlog("s1", "e")
    assert first.first_open_seq == 2
    await store.save_embeddings(
        "e", tuple(NewEmbedding("s1", t.item, 0, t.message_id, b"") for t in first.tasks)
    )
    await store.fill_tool_results("s1", (build.result("c1", "the answer is 7"),))
    (filled,) = (await store.embedding_backlog("s1", "e", after_seq=1)).tasks
    assert filled.text == "the answer is 7" and filled.message_id == "m2"


async def test_saving_a_chunk_twice_keeps_the_first_and_load_reads_on(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    await store.append("s1", (build.message("m1"),))
    item = body_item(2)
    await store.save_embeddings("e", (NewEmbedding("s1", item, 0, "m1", vector_bytes([1.0])),))
    await store.save_embeddings("e", (NewEmbedding("s1", item, 0, "m1", vector_bytes([2.0])),))
    await store.save_embeddings("e", (NewEmbedding("s1", item, 1, "m1", vector_bytes([3.0])),))
    rows = await store.load_embeddings("s1", "e")
    assert [vector_from_bytes(r.vector) for r in rows] == [(1.0,), (3.0,)]
    assert await store.load_embeddings("s1", "e", after_id=rows[0].id) == rows[1:]
    assert await store.count_embeddings("s1", "e") == 2
    assert await store.load_embeddings("s1", "nobody") == []


async def test_summaries_have_a_backlog_and_are_found_by_a_word(
    store: Store, build: type[Build]
) -> None:
    assert isinstance(store, VectorIndex)
    await store.create_session(build.session())
    await store.append("s1", (build.message("m1"), build.message("m2", role="assistant")))
    await store.commit_summary(
        "s1", build.summary("sum_1", "m1", "m2", text="They chose 100% PostgreSQL_16.")
    )
    (task,) = await store.summary_backlog("s1", "e")
    assert task.item == "sum_1" and task.message_id is None
    assert await store.summaries_with("s1", "postgresql") == [("sum_1", task.text)]
    assert await store.summaries_with("s1", "100%") == [("sum_1", task.text)]
    assert await store.summaries_with("s1", "l_1") == [("sum_1", task.text)]
    assert await store.summaries_with("s1", "x%y") == []  # % is a character, not a wildcard
    await store.save_embeddings("e", (NewEmbedding("s1", "sum_1", 0, None, b""),))
    assert await store.summary_backlog("s1", "e") == []


def test_vector_encoding_round_trips_and_refuses_bad_input() -> None:
    assert vector_from_bytes(vector_bytes([0.5, -1.25])) == (0.5, -1.25)
    with pytest.raises(ValueError, match="multiple of 4"):
        vector_from_bytes(b"abc")
    for bad in ("", "  ", "x" * 201, "a\0b"):
        with pytest.raises(ValueError, match="embedder name"):
            check_embedder_name(bad)


async def test_a_worker_embeds_each_body_once_and_catches_up_after_a_restart(
    store: Store, build: type[Build]
) -> None:
    await store.create_session(build.session())
    await store.append("s1", tuple(build.message(f"m{i}", text=f"turn {i}") for i in range(40)))
    embedder = WordHashEmbedder()
    worker = EmbeddingWorker(store, embedder, batch=8, page=10, quiet=0.0)
    worker.watch("s1")
    await worker.drain()
    await worker.close()
    assert isinstance(store, VectorIndex)
    assert await store.count_embeddings("s1", "word-hash") == 40
    await store.append("s1", tuple(build.message(f"n{i}", text=f"more {i}") for i in range(5)))
    again = EmbeddingWorker(store, embedder, quiet=0.0)  # a new process: scans from the start
    again.watch("s1")
    await again.drain()
    await again.close()
    rows = await store.load_embeddings("s1", "word-hash")
    assert len(rows) == 45 and len({r.item for r in rows}) == 45


CHILD = r"""
import asyncio, hashlib, math, sys, time
from mnesis.models.message import ToolPart
from mnesis.session.embedding import EmbeddingWorker
from mnesis.store import NewMessage, NewPart, SessionRecord, SQLiteStore
from mnesis.models.message import TextPart

class Slow:
    name = "word-hash"
    dimensions = 16
    async def embed(self, texts):
        await asyncio.sleep(0.02)
        out = []
        for text in texts:
            v = [0.0] * 16
            for w in text.lower().split():
                v[int(hashlib.sha256(w.encode()).hexdigest(), 16) % 16] += 1.0
            n = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / n for x in v])
        return out

async def main():
    store = await SQLiteStore(sys.argv[1]).open()
    await store.create_session(SessionRecord(
        id="s1", model="m", agent="a", parent_id=None, system_prompt="p",
        config_json="{}", created_at=time.time()))
    await store.append("s1", tuple(
        NewMessage(id=f"m{i}", role="user", created_at=time.time(),
                   parts=(NewPart(TextPart(text=f"fact number {i} about things"), 5),))
        for i in range(2000)))
    print("ready", flush=True)
    worker = EmbeddingWorker(store, Slow(), batch=4, quiet=0.0)
    worker.watch("s1")
    await worker.drain()
    print("finished", flush=True)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_worker_killed_mid_backlog_loses_nothing_it_stored(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"ready"

    def stored() -> list[tuple[int, str, int, bytes]]:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT id, item, chunk, vector FROM embeddings").fetchall()

    for _ in range(600):  # until some batches are stored, at most a minute
        if len(await asyncio.to_thread(stored)) >= 40:
            break
        await asyncio.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    before = await asyncio.to_thread(stored)
    assert 40 <= len(before) < 2000
    store = await SQLiteStore(path).open()
    try:
        embedder = WordHashEmbedder()
        worker = EmbeddingWorker(store, embedder, batch=64, quiet=0.0)
        worker.watch("s1")
        await worker.drain()
        await worker.close()
        after = await asyncio.to_thread(stored)
        # What the killed worker stored is all there, unchanged: nothing was re-embedded.
        assert set(before) <= set(after)
        assert len(after) == 2000 and len({(i, c) for _, i, c, _ in after}) == 2000
        assert worker.stats.items == 2000 - len(before)
        assert all(len(v) == 64 for _, _, _, v in after)
    finally:
        await store.close()
