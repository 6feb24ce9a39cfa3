"""A reply streaming when its process is SIGKILLed is not lost, on both backends.

The streamer is a real ``python -c`` process; the test kills it mid-reply and
loads the session: the text the user already saw is there, stored as an
interrupted (failed) reply, outside the context and uncounted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mnesis import MnesisSession, MockProvider
from mnesis.models.message import MessageStatus
from mnesis.session.drafts import INTERRUPTED
from mnesis.store import Store
from mnesis.store.owners import this_process
from mnesis.store.sql.backend import SQLBackend

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

MODEL = "openai/gpt-4o"
OpenStore = Callable[[str], Awaitable[Store]]
REPLY_WORDS = [f"w{i:03d}" for i in range(400)]

STREAMER = r"""
import asyncio, sys
from mnesis import MnesisSession, MockProvider

url, reply = sys.argv[1], sys.argv[2]


async def main():
    provider = MockProvider(lambda request: reply, chunks=400, chunk_delay=0.01)
    session = await MnesisSession.create(model="openai/gpt-4o", db_path=url, provider=provider)
    print("session", session.id, flush=True)
    await session.send("tell me a long story", on_part=lambda p: print("delta", flush=True))
    print("done", flush=True)


asyncio.run(main())
"""


async def test_text_streamed_before_a_sigkill_is_kept_as_an_interrupted_reply(
    db_url: str,
) -> None:
    reply = " ".join(REPLY_WORDS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STREAMER,
        db_url,
        reply,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert first.startswith(b"session "), (first, await proc.stderr.read())
        session_id = first.split()[1].decode()
        for _ in range(100):  # about a second of streaming
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line == b"delta\n", line
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    session = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider())
    try:
        messages = await session.messages()
        assert [(m.role, m.message.status) for m in messages] == [
            ("user", MessageStatus.COMPLETE),
            ("assistant", MessageStatus.FAILED),
        ]
        interrupted = messages[1]
        assert interrupted.message.error is not None
        assert str(interrupted.message.error).startswith(INTERRUPTED)
        kept = interrupted.text_content()
        # Saved at most every 250 ms: everything streamed well before the kill is there.
        assert reply.startswith(kept)
        assert kept.startswith(" ".join(REPLY_WORDS[:40]))
        assert len(kept) < len(reply)
        # Like any failed reply: in the log and searchable, never in the context or counted.
        hits = await session.grep("w030")
        assert [m.message_id for m in hits.matches] == [interrupted.id]
        assert session.token_usage.effective_total() == 0
        assert await session.verify() == []
        # The next turn goes on from the user's message, without the partial reply.
        assert (await session.send("go on")).text
    finally:
        await session.close()
    again = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider())
    try:
        assert len(await again.messages()) == 4  # settled once, not on every load
    finally:
        await again.close()


async def test_a_short_turn_writes_no_draft_and_a_long_one_leaves_none(
    db_url: str, open_store_at: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[str] = []
    save_draft = SQLBackend.save_draft

    async def counting(self: SQLBackend, session_id: str, message_id: str, text: str) -> None:
        saves.append(text)
        await save_draft(self, session_id, message_id, text)

    monkeypatch.setattr(SQLBackend, "save_draft", counting)
    provider = MockProvider(lambda r: " ".join(REPLY_WORDS[:60]), chunks=60)
    async with MnesisSession.open(model=MODEL, db_path=db_url, provider=provider) as session:
        await session.send("quick")
        assert saves == []  # no extra round trip for a turn that streams in < 250 ms
        provider.chunk_delay = 0.02  # about 1.2 s of streaming
        result = await session.send("slow")
        assert len(saves) >= 2
        assert all(result.text.startswith(text) for text in saves)
        store = await open_store_at(db_url)
        try:
            assert await store.reply_drafts(session.id) == []
        finally:
            await store.close()


async def test_a_draft_whose_process_lives_is_left_alone(
    db_url: str, open_store_at: OpenStore
) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_url, provider=MockProvider()) as s:
        await s.send("hello")
        session_id = s.id
    store = await open_store_at(db_url)
    try:
        await store.save_draft(session_id, "msg_live", "still streaming")  # this process
        session = await MnesisSession.load(session_id, db_path=db_url, provider=MockProvider())
        try:
            assert len(await session.messages()) == 2
        finally:
            await session.close()
        assert [d.message_id for d in await store.reply_drafts(session_id)] == ["msg_live"]
    finally:
        await store.close()


async def test_a_draft_is_settled_once_and_never_over_a_stored_reply(
    store: Store, build: Any
) -> None:
    await store.create_session(build.session("s1"))
    await store.append("s1", (build.message("u1"),))
    await store.save_draft("s1", "a1", "first words")
    await store.save_draft("s1", "a1", "first words and more")  # replaced, not added
    await store.save_draft("s1", "a2", "a reply that was stored after all")
    await store.append("s1", (build.message("a2", role="assistant"),))
    (draft, _) = await store.reply_drafts("s1")
    assert (draft.message_id, draft.text) == ("a1", "first words and more")
    assert draft.owner == this_process() and not draft.abandoned(time.time())

    failed = build.message(
        "a1", role="assistant", text=draft.text, status=MessageStatus.FAILED, error=INTERRUPTED
    )
    assert await store.settle_draft("s1", failed)
    assert not await store.settle_draft("s1", failed)  # a second loader stores nothing
    stored_reply = build.message("a2", role="assistant", status=MessageStatus.FAILED)
    assert not await store.settle_draft("s1", stored_reply)  # the reply exists: draft dropped
    assert await store.reply_drafts("s1") == []
    messages = await store.get_messages("s1")
    assert [(m.id, m.message.status) for m in messages] == [
        ("u1", "complete"),
        ("a2", "complete"),
        ("a1", "failed"),
    ]
    _, entries = await store.context_entries("s1")
    assert [e.ref_id for e in entries] == ["u1", "a2"]  # outside the context view
    assert await store.verify("s1") == []
    await store.discard_draft("unknown")  # harmless
