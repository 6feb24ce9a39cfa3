"""grep / describe / expand over a session's immutable log.

Everything ever stored stays reachable: grep searches the whole history (the
full-text index, falling back to a bounded scan only for regular
expressions), describe explains any id, expand walks a summary node back to
its original messages.

A regular expression is matched in a worker thread, a batch of messages at a
time, so a long scan never holds the event loop; a regular expression gets one time budget
for the whole scan (the ``regex`` engine stops a match at its deadline), so a
pathological pattern returns partial results instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import regex

from mnesis.errors import InvalidInputError, UnknownIdError
from mnesis.files.handler import file_status
from mnesis.llm.embedding import Embedder
from mnesis.models.message import FileRefPart, MessageWithParts
from mnesis.recall.models import (
    ExpandResult,
    FileDescription,
    GrepMatch,
    GrepResult,
    MessageDescription,
    SearchResult,
    SummaryDescription,
)
from mnesis.store.base import Store, message_text

MAX_LIMIT = 100
MAX_OFFSET = 1_000_000_000
MAX_PATTERN = 1_000
SNIPPET_RADIUS = 80
_WORD = regex.compile(r"\w+")
_BATCH = 200
_MAX_BATCH = 2_000

Hit = tuple[MessageWithParts, str, tuple[int, int]]


def _snippet(text: str, start: int, end: int) -> str:
    lo, hi = max(0, start - SNIPPET_RADIUS), min(len(text), end + SNIPPET_RADIUS)
    body = " ".join(text[lo:hi].split())
    return ("…" if lo else "") + body + ("…" if hi < len(text) else "")


def _check_page(limit: int | None, offset: int, max_limit: int | None) -> None:
    """``limit`` and ``offset`` as whole numbers in range, else ``InvalidInputError``."""
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidInputError(f"limit must be a whole number, not {limit!r}")
        top = max_limit if max_limit is not None else MAX_OFFSET
        if not 1 <= limit <= top:
            raise InvalidInputError(f"limit must be between 1 and {top:,}")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise InvalidInputError(f"offset must be a whole number, not {offset!r}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInputError(f"offset must be between 0 and {MAX_OFFSET:,}")


def _scan(
    matcher: Any, messages: Sequence[MessageWithParts], deadline: float | None, wanted: int
) -> tuple[list[Hit], bool]:
    """The messages ``matcher`` finds (at most ``wanted``), and whether time ran out.

    Runs in a worker thread; the regex engine releases the GIL while it matches.
    """
    hits: list[Hit] = []
    for message in messages:
        text = message_text(message)
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            return hits, True
        try:
            hit = matcher.search(text, timeout=timeout)
        except TimeoutError:
            return hits, True
        if hit is not None:
            hits.append((message, text, hit.span()))
            if len(hits) >= wanted:
                break
    return hits, False


class Recall:
    """Lossless recall for one session of a store."""

    def __init__(self, store: Store, session_id: str, *, regex_budget: float = 2.0) -> None:
        self.store = store
        self.session_id = session_id
        self.regex_budget = regex_budget
        self.embedder: Embedder | None = None  # for search(); None: by words only

    async def search(self, query: str, *, limit: int = 10, offset: int = 0) -> SearchResult:
        """The session's stored history ranked by words and meaning (:mod:`.search`)."""
        from mnesis.recall.search import HybridSearch

        return await HybridSearch(self.store, self.embedder).search(
            query, (self.session_id,), limit=limit, offset=offset
        )

    # -- grep -------------------------------------------------------------------

    async def grep(
        self,
        pattern: str,
        *,
        summary_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
        regex: bool = False,
    ) -> GrepResult:
        """Search the session's whole stored history.

        Plain patterns match case-insensitively where a word starts (``"alice
        in"`` finds "Alice in Wonderland", not "malice in"), using the
        full-text index; ``regex=True`` takes a regular expression and scans,
        within ``regex_budget`` seconds in all, so a pathological pattern
        returns what it found by then with ``complete=False``.
        """
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidInputError("grep needs a non-empty pattern")
        if len(pattern) > MAX_PATTERN:
            raise InvalidInputError(f"grep patterns are limited to {MAX_PATTERN} characters")
        _check_page(limit, offset, MAX_LIMIT)
        matcher = self._compile(pattern, regex)
        deadline = time.monotonic() + self.regex_budget if regex else None
        scope = None
        if summary_id is not None:
            await self._own_summary(summary_id)
            scope = await self.store.summary_message_ids(summary_id)
        terms = tuple(t.lower() for t in _WORD.findall(pattern)) if not regex else ()
        found: list[Hit] = []
        complete = True
        wanted = offset + limit + 1
        batches = self._candidates(terms, scope, deadline, first_batch=min(wanted, _MAX_BATCH))
        async for batch in batches:
            if batch is None:
                complete = False
                break
            if regex:  # a pattern of the caller's may backtrack: off the loop
                hits, out_of_time = await asyncio.to_thread(
                    _scan, matcher, batch, deadline, wanted - len(found)
                )
            else:  # an escaped literal over the index's candidates: linear, cheap
                hits, out_of_time = _scan(matcher, batch, deadline, wanted - len(found))
            found += hits
            if out_of_time:
                complete = False
                break
            if len(found) >= wanted:
                break
        page = found[offset : offset + limit]
        live = await self.store.covering_summaries(self.session_id, tuple(m.id for m, _, _ in page))
        matches = [
            GrepMatch(
                message_id=m.id,
                seq=m.message.seq,
                role=m.role,
                created_at=m.message.created_datetime,
                snippet=_snippet(text, *span),
                text=text,
                summary_id=live.get(m.id),
            )
            for m, text, span in page
        ]
        more = len(found) > offset + limit
        return GrepResult(
            pattern=pattern,
            regex=regex,
            matches=matches,
            offset=offset,
            next_offset=offset + limit if more else None,
            complete=complete,
        )

    @staticmethod
    def _compile(pattern: str, is_regex: bool) -> Any:
        if is_regex:
            try:
                return regex.compile(pattern, regex.IGNORECASE)
            except regex.error as exc:
                raise InvalidInputError(f"invalid regular expression {pattern!r}: {exc}") from exc
        prefix = r"(?<!\w)" if _WORD.match(pattern) else ""
        return regex.compile(prefix + regex.escape(pattern), regex.IGNORECASE)

    async def _candidates(
        self,
        terms: tuple[str, ...],
        scope: list[str] | None,
        deadline: float | None,
        *,
        first_batch: int = _BATCH,
    ) -> AsyncIterator[list[MessageWithParts] | None]:
        """Batches of messages that may match, in order; None when ``deadline`` passed.

        Index hits are fetched in growing batches: the first is just what the
        page needs, so a common word costs one small query.
        """

        def out_of_time() -> bool:
            return deadline is not None and time.monotonic() > deadline

        if scope is not None:
            for start in range(0, len(scope), _BATCH):
                if out_of_time():
                    yield None
                    return
                yield await self.store.get_messages_by_id(
                    self.session_id, tuple(scope[start : start + _BATCH])
                )
            return
        if terms:
            after = 0
            seen: set[str] = set()
            size = max(first_batch, 8)
            while True:
                hits = await self.store.search(self.session_id, terms, after=after, limit=size)
                if not hits:
                    return
                size = min(size * 4, _MAX_BATCH)
                after = hits[-1][0]
                ids = tuple(dict.fromkeys(mid for _, mid in hits if mid not in seen))
                seen.update(ids)
                yield await self.store.get_messages_by_id(self.session_id, ids)
        else:
            after_seq = 0
            while True:
                if out_of_time():
                    yield None
                    return
                batch = await self.store.scan_messages(
                    self.session_id, after_seq=after_seq, limit=_BATCH
                )
                if not batch:
                    return
                after_seq = batch[-1].message.seq
                yield batch

    # -- describe / expand -------------------------------------------------------

    async def describe(
        self, item_id: str
    ) -> SummaryDescription | MessageDescription | FileDescription:
        """What an id is: a summary node, a stored message or a file reference."""
        if not isinstance(item_id, str) or not item_id:
            raise InvalidInputError("describe needs an id")
        if item_id.startswith("file_"):
            return await self._describe_file(item_id)
        try:
            summary = await self.store.get_summary(item_id)
        except KeyError:
            summary = None
        if summary is not None:
            if summary.session_id != self.session_id:
                raise UnknownIdError(item_id, self.session_id)
            message_ids = await self.store.summary_message_ids(item_id)
            parent = await self.store.parent_of(item_id)
            children = [i for _, i in await self.store.summary_sources(item_id)]
            return SummaryDescription(
                id=summary.id,
                node_kind=summary.kind,
                depth=summary.depth,
                level_used=summary.level_used,
                token_count=summary.token_count,
                first_seq=summary.first_seq,
                last_seq=summary.last_seq,
                message_count=summary.message_count,
                first_message_id=message_ids[0] if message_ids else None,
                last_message_id=message_ids[-1] if message_ids else None,
                parent_id=parent,
                child_ids=children,
                in_context=parent is None,
                created_at=datetime.fromtimestamp(summary.created_at, tz=UTC),
                text=summary.text,
            )
        try:
            stored = await self.store.get_message(item_id)
        except KeyError:
            raise UnknownIdError(item_id, self.session_id) from None
        if stored.message.session_id != self.session_id:
            raise UnknownIdError(item_id, self.session_id)
        live = await self.store.covering_summaries(self.session_id, (item_id,))
        return MessageDescription(
            id=stored.id,
            seq=stored.message.seq,
            role=stored.role,
            status=str(stored.message.status),
            created_at=stored.message.created_datetime,
            token_count=stored.message.token_count,
            pinned=await self.store.is_pinned(self.session_id, item_id),
            summary_id=live.get(item_id),
            parent_summary_id=await self.store.parent_of(item_id),
        )

    async def _describe_file(self, content_id: str) -> FileDescription:
        part = await self.store.get_file_ref(content_id)
        used = await self.store.search(self.session_id, (content_id,), limit=1)
        if part is None or not used:
            raise UnknownIdError(content_id, self.session_id)
        (message,) = await self.store.get_messages_by_id(self.session_id, (used[0][1],))
        path = next(
            (
                p.path
                for p in message.parts
                if isinstance(p, FileRefPart) and p.content_id == content_id
            ),
            part.path,
        )
        status = await asyncio.to_thread(file_status, path, content_id)
        return FileDescription(
            id=content_id,
            path=path,
            file_type=part.file_type,
            token_count=part.token_count,
            exploration_summary=part.exploration_summary,
            status=status,
        )

    async def expand(
        self, summary_id: str, *, limit: int | None = None, offset: int = 0
    ) -> ExpandResult:
        """The original messages under a summary node, verbatim, in order, a page at a time."""
        _check_page(limit, offset, None)
        await self._own_summary(summary_id)
        ids = await self.store.summary_message_ids(summary_id)
        page = ids[offset : offset + limit if limit is not None else None]
        messages = await self.store.get_messages_by_id(self.session_id, tuple(page))
        end = offset + len(page)
        return ExpandResult(
            summary_id=summary_id,
            messages=messages,
            total=len(ids),
            offset=offset,
            next_offset=end if end < len(ids) else None,
        )

    async def _own_summary(self, summary_id: str) -> None:
        try:
            summary = await self.store.get_summary(summary_id)
        except KeyError:
            raise UnknownIdError(summary_id, self.session_id) from None
        if summary.session_id != self.session_id:
            raise UnknownIdError(summary_id, self.session_id)
