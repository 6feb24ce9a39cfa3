"""Erasure, the store's one way to remove rows, on every backend.

Items a framework pops or clears stay stored (the integrations append a
marker); only an explicit erasure (a privacy request) deletes. These tests hold
both backends to the same contract: what is erased is gone from every read
and from the full-text index, what is not stays, and ``verify()`` finds the
store whole afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnesis.errors import InvalidInputError, SessionNotFoundError
from mnesis.models.message import ToolPart
from mnesis.store import SQLiteStore, Store, ToolResult
from mnesis.store.base import Erasure


async def _two_sessions(store: Store, build: Any) -> None:
    for sid in ("s1", "s2"):
        await store.create_session(build.session(sid))
        await store.append(
            sid,
            (
                build.message(f"{sid}-m1", text=f"quokka secret of {sid}"),
                build.message(
                    f"{sid}-m2",
                    build.text("let me look"),
                    build.tool_call(f"{sid}-c1", input={"zeta": 1, "alpha": "wombat"}),
                    role="assistant",
                ),
            ),
        )
        await store.fill_tool_results(sid, (ToolResult(f"{sid}-c1", "numbat output", None, 4),))


def test_every_backend_can_erase(store: Store) -> None:
    assert isinstance(store, Erasure)


async def test_erasing_a_session_removes_it_and_its_index_but_not_its_neighbours(
    store: Store, build: Any
) -> None:
    await _two_sessions(store, build)
    await store.create_session(build.session("child", parent_id="s1"))
    assert isinstance(store, Erasure)

    await store.erase_session("s1")

    with pytest.raises(SessionNotFoundError):
        await store.get_session("s1")
    with pytest.raises(SessionNotFoundError):
        await store.get_messages("s1")
    for word in ("quokka", "wombat", "numbat"):
        assert await store.search("s1", (word,)) == []
        assert len(await store.search("s2", (word,))) == 1  # the neighbour's copy stays
    assert [m.id for m in await store.get_messages("s2")] == ["s2-m1", "s2-m2"]
    assert (await store.get_session("child")).parent_id is None
    assert await store.verify() == []


async def test_erasing_an_unknown_session_is_an_error(store: Store) -> None:
    assert isinstance(store, Erasure)
    with pytest.raises(SessionNotFoundError):
        await store.erase_session("nope")


async def test_an_erased_session_id_can_be_created_again(store: Store, build: Any) -> None:
    await _two_sessions(store, build)
    assert isinstance(store, Erasure)
    await store.erase_session("s1")
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("fresh", text="a new start"),))
    assert [m.id for m in await store.get_messages("s1")] == ["fresh"]
    assert await store.search("s1", ("quokka",)) == []
    assert await store.verify("s1") == []


async def test_erasing_the_latest_message_removes_it_from_reads_context_and_index(
    store: Store, build: Any
) -> None:
    await _two_sessions(store, build)
    assert isinstance(store, Erasure)
    version_before, _ = await store.context_entries("s1")

    outcome = await store.erase_latest_message("s1", "s1-m2")

    assert [m.id for m in await store.get_messages("s1")] == ["s1-m1"]
    version, entries = await store.context_entries("s1")
    assert [e.ref_id for e in entries] == ["s1-m1"]
    assert version > version_before and outcome.version_after == version
    assert await store.search("s1", ("wombat",)) == []
    assert await store.search("s1", ("numbat",)) == []
    assert len(await store.search("s1", ("quokka",))) == 1
    assert await store.verify() == []
    # the next message takes the freed sequence number
    await store.append("s1", (build.message("s1-m3", text="after"),))
    assert [m.message.seq for m in await store.get_messages("s1")] == [1, 2]
    assert await store.verify("s1") == []


async def test_only_the_latest_verbatim_unpinned_message_can_be_erased_alone(
    store: Store, build: Any
) -> None:
    await _two_sessions(store, build)
    assert isinstance(store, Erasure)
    with pytest.raises(InvalidInputError, match="not the latest"):
        await store.erase_latest_message("s1", "s1-m1")
    await store.pin("s1", "s1-m2")
    with pytest.raises(InvalidInputError, match="pinned"):
        await store.erase_latest_message("s1", "s1-m2")
    await store.append("s2", (build.message("s2-m3", text="more"),))
    await store.commit_summary(
        "s2", build.summary("sum1", "s2-m1", "s2-m2", "s2-m3", text="all of it")
    )
    with pytest.raises(InvalidInputError, match="not verbatim"):
        await store.erase_latest_message("s2", "s2-m3")
    with pytest.raises(SessionNotFoundError):
        await store.erase_latest_message("nope", "x")
    assert len(await store.get_messages("s1")) == 2
    assert await store.verify() == []


async def test_erasing_keeps_tool_calls_of_other_messages_answerable(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1"))
    await store.append(
        "s1",
        (
            build.message("m1", text="go"),
            build.message("m2", build.tool_call("c1"), role="assistant"),
            build.message("m3", text="a later user message"),
        ),
    )
    assert isinstance(store, Erasure)
    await store.erase_latest_message("s1", "m3")
    await store.fill_tool_results("s1", (ToolResult("c1", "done", None, 2),))
    parts = (await store.get_messages("s1"))[-1].parts
    assert isinstance(parts[0], ToolPart) and parts[0].output == "done"
    assert await store.verify("s1") == []


async def test_an_erasure_leaves_no_byte_of_the_erased_text_in_the_sqlite_file(
    tmp_path: Path, build: Any
) -> None:
    # A contentless FTS5 table's 'delete' only records that a row is gone: the
    # words stay in the index's segments, and SQLite leaves deleted cells in their
    # pages, until something overwrites them. An erasure must not wait for that.
    path = tmp_path / "erase.db"
    store = await SQLiteStore(path).open()
    try:
        await store.create_session(build.session("s1"))
        await store.create_session(build.session("s2"))
        for n in range(30):  # enough rows that the index has several segments
            await store.append("s2", (build.message(f"s2-m{n}", text=f"neighbour note {n}"),))
        secret = "zorbluxquint " * 40
        await store.append("s1", (build.message("s1-m1", text="keep " + secret),))
        await store.append("s1", (build.message("s1-m2", text="forget " + secret.upper()),))
        await store.erase_latest_message("s1", "s1-m2")
        await store.append("s2", (build.message("s2-late", text="a later write"),))
        assert len(await store.search("s1", ("zorbluxquint",))) == 1
        await store.erase_session("s1")
        assert await store.search("s2", ("neighbour",))
    finally:
        await store.close()
    leftovers = {
        file.name: file.read_bytes().lower().count(b"zorbluxquint")
        for file in tmp_path.glob("erase.db*")
    }
    assert leftovers and set(leftovers.values()) == {0}, leftovers
