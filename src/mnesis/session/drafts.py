"""A streaming reply's text kept safe from a process that dies mid-turn.

What the user has seen must not be lost: while a reply streams, its text so far
is saved as a draft row, and the next load of the session turns a draft whose
process is gone into a failed message marked interrupted. Saving is throttled
so a turn costs what it did: nothing is written until the stream has run for
:data:`DRAFT_AFTER` seconds (most turns are done by then), then at most one save
every :data:`DRAFT_EVERY` seconds, in the background so the stream never waits
on the store. Storing the reply (or its failure) removes the draft.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mnesis.errors import MnesisStoreError
from mnesis.llm.base import ResponseAccumulator
from mnesis.models.message import FinishReason, MessageStatus, TextPart
from mnesis.session.tokens import TokenCounter
from mnesis.store import Store

logger = logging.getLogger("mnesis.session")

DRAFT_AFTER = 0.25  # seconds of streaming before the text is first saved
DRAFT_EVERY = 0.25  # seconds between two saves, at least

INTERRUPTED = "aborted: interrupted, the process streaming this reply ended before it finished"


class DraftKeeper:
    """Saves one reply's text as it streams; forgets the draft once the reply is stored."""

    def __init__(self, store: Store, session_id: str, message_id: str) -> None:
        self._store = store
        self._session_id = session_id
        self._message_id = message_id
        self._last = time.monotonic() - DRAFT_EVERY + DRAFT_AFTER
        self._saving: asyncio.Task[None] | None = None

    def text_arrived(self, reply: ResponseAccumulator) -> None:
        """Save the reply's text so far, when a save is due and none is running."""
        now = time.monotonic()
        if now - self._last < DRAFT_EVERY:
            return
        if self._saving is not None and not self._saving.done():
            return
        self._last = now
        self._saving = asyncio.get_running_loop().create_task(self._save(reply.text))

    async def _save(self, text: str) -> None:
        try:
            await self._store.save_draft(self._session_id, self._message_id, text)
        except Exception as exc:  # a lost draft only weakens crash safety
            logger.warning("could not save the draft of reply %s: %s", self._message_id, exc)

    async def discard(self) -> None:
        """The reply (or its failure) is stored: remove the draft, if one was saved."""
        if self._saving is None:
            return  # the common case: a short reply, never saved
        await asyncio.gather(self._saving, return_exceptions=True)
        try:
            await self._store.discard_draft(self._message_id)
        except Exception as exc:  # the next load settles it: the reply exists
            logger.warning("could not remove the draft of reply %s: %s", self._message_id, exc)


async def settle_interrupted_replies(store: Store, session_id: str, model: str) -> int:
    """Store every draft of the session whose process is gone as an interrupted reply.

    Each becomes a failed assistant message (outside the context, never counted)
    with the draft's id and text. Returns how many were stored.
    """
    drafts = await store.reply_drafts(session_id)
    if not drafts:
        return 0
    now, counter, settled = time.time(), TokenCounter(model), 0
    for draft in drafts:
        if not draft.abandoned(now):
            continue
        owner = draft.owner
        message = counter.counted_message(
            draft.message_id,
            "assistant",
            [TextPart(text=draft.text)],
            draft.created_at,
            status=MessageStatus.FAILED,
            finish_reason=FinishReason.ERROR,
            error=f"{INTERRUPTED} (pid {owner.pid} on {owner.host})",
        )
        try:
            settled += await store.settle_draft(session_id, message)
        except MnesisStoreError as exc:  # e.g. read-only media: load anyway, settle later
            logger.warning("could not store interrupted reply %s: %s", draft.message_id, exc)
    return settled
