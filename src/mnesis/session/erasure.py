"""Erasure: the one kind of write that removes what was stored (a privacy request).

Every other write appends; these delete rows through the store's
:class:`~mnesis.store.base.Erasure` capability, after the session's background
work that could still write them has stopped or finished.
"""

from __future__ import annotations

import asyncio

from mnesis.errors import MnesisStoreError
from mnesis.session.compaction import CompactionScheduler
from mnesis.session.live_context import LiveContext
from mnesis.session.streaming import DetachedTurns
from mnesis.store.base import Erasure, Store


def eraser(store: Store, what: str) -> Erasure:
    """``store`` as an :class:`Erasure`, else ``MnesisStoreError`` ("cannot erase ``what``")."""
    if not isinstance(store, Erasure):
        raise MnesisStoreError(f"{type(store).__name__} cannot erase {what}")
    return store


async def erase_session(
    store: Store,
    session_id: str,
    compaction: CompactionScheduler,
    detached: DetachedTurns,
    turn_lock: asyncio.Lock,
) -> None:
    """Delete the session's rows once no turn or compaction pass can write any more."""
    erasing = eraser(store, "sessions")
    compaction.stop_starting()
    await detached.wait()
    async with turn_lock:
        await compaction.finish(abort=True)
        await erasing.erase_session(session_id)


async def erase_latest_message(
    store: Store,
    session_id: str,
    message_id: str,
    compaction: CompactionScheduler,
    turn_lock: asyncio.Lock,
    live: LiveContext,
) -> None:
    """Delete the session's latest message between turns, then reload the context."""
    erasing = eraser(store, "messages")
    async with turn_lock:
        await compaction.wait()
        await erasing.erase_latest_message(session_id, message_id)
        await live.reload()
