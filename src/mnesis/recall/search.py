"""Hybrid search: find what was said by its words and by its meaning.

Two rankings of a session's whole stored history (summarised and pruned
messages, tool calls and results, summary texts) are fused by reciprocal rank
fusion (RRF: each list adds ``weight / (k + rank)``), which needs no score
calibration between a word count and a cosine:

- *words*: each content word of the query is looked up alone in the
  full-text index (as a prefix, so "listen" finds "listening"); a message
  scores the sum of its words' rarity (``log(1 + cap / hits)``), BM25 without
  term frequency. A word with more than ``cap`` hits says little and costs a
  long read, so it is dropped (unless every word is that common).
- *meaning*: the query's vector against every stored vector of the session
  (:mod:`.vectors`, exact brute force); a message scores its best chunk.

A message not embedded yet (the background worker is behind) is still found
by its words. Without an embedder the search is the word ranking alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import regex

from mnesis.errors import ConfigError, InvalidInputError
from mnesis.llm.embedding import Embedder
from mnesis.recall.api import MAX_LIMIT, _check_page, _snippet
from mnesis.recall.models import SearchMatch, SearchResult
from mnesis.recall.vectors import SessionVectors, vector_cache
from mnesis.store.base import Store, VectorIndex, message_text

logger = logging.getLogger("mnesis.recall")

MAX_QUERY = 2_000
MAX_SEARCH_OFFSET = 10_000
MAX_TERMS = 16
_WORD = regex.compile(r"\w+")
# Words that carry no topic: looked up, they only add noise and cost.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves s t d ll m re ve y o don didn doesn isn wasn weren won shouldn wouldn couldn
    hasn haven hadn let us get got also""".split()
)

Key = tuple[Literal["message", "summary"], str, str]  # (kind, session id, id)


def query_terms(query: str) -> list[str]:
    """The query's content words, lower case, in order, each once."""
    words = [w.lower() for w in _WORD.findall(query)]
    terms = [w for w in dict.fromkeys(words) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return terms[:MAX_TERMS]


@functools.lru_cache(maxsize=1024)
def _word_start(term: str) -> Any:
    """A matcher of ``term`` where a word starts, case-insensitively."""
    return regex.compile(r"(?<!\w)" + regex.escape(term), regex.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _words_start(terms: tuple[str, ...]) -> Any:
    """A matcher of any of ``terms`` where a word starts, case-insensitively."""
    alternatives = "|".join(regex.escape(t) for t in terms)
    return regex.compile(r"(?<!\w)(?:" + alternatives + ")", regex.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the two rankings are fused: RRF's ``k`` and each ranking's weight."""

    # Chosen on the tune half of benchmarks/data/paraphrases (docs/recall.md): a
    # small k trusts each ranking's head; words weigh a quarter of meaning, so a
    # rare shared word lifts a close call without outranking a clear meaning match.
    k: float = 10.0
    words: float = 0.25
    meaning: float = 1.0


class HybridSearch:
    """Search over sessions of one store, by words and (with an embedder) meaning.

    Args:
        store: The store; vectors are used when it is a ``VectorIndex``.
        embedder: Embeds the query; None searches by words alone.
        word_cap: A word with more hits than this is too common to rank by.
        fusion: RRF parameters.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None,
        *,
        word_cap: int = 400,
        fusion: Fusion | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.word_cap = word_cap
        self.fusion = fusion or Fusion()

    async def search(
        self, query: str, session_ids: Sequence[str], *, limit: int = 10, offset: int = 0
    ) -> SearchResult:
        """The page ``[offset, offset + limit)`` of the best matches in ``session_ids``."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("search needs a non-empty query")
        if len(query) > MAX_QUERY:
            raise InvalidInputError(f"search queries are limited to {MAX_QUERY} characters")
        _check_page(limit, offset, MAX_LIMIT)
        if offset > MAX_SEARCH_OFFSET:
            raise InvalidInputError(f"search offset must be at most {MAX_SEARCH_OFFSET:,}")
        terms = query_terms(query)
        depth = max(50, (offset + limit + 1) * 3)
        sessions = list(dict.fromkeys(session_ids))
        # The query is embedded (in the embedder's thread, or by its provider) while
        # the full-text index is read.
        embedding = asyncio.ensure_future(self._embed_query(query))
        by_words: dict[Key, float] = {}
        by_meaning: dict[Key, float] = {}
        try:
            semantic = self.embedder is not None and isinstance(self.store, VectorIndex)
            for session_id in sessions:
                by_words.update(await self._word_scores(session_id, terms, semantic))
            dimensions = self._known_dimensions() if semantic else None
            if dimensions is not None:  # the vectors stored since the last search, meanwhile
                for session_id in sessions:
                    await self._vectors(session_id, dimensions)
        finally:
            query_vector = await embedding
        semantic = query_vector is not None
        if query_vector is not None:
            for session_id in sessions:
                by_meaning.update(await self._meaning_scores(session_id, query_vector, depth))
        scores = self._fuse(by_words, by_meaning)
        fused = sorted(scores, key=lambda key: -scores[key])
        page = fused[offset : offset + limit]
        matches = await self._matches(page, terms, scores, by_words, by_meaning)
        more = len(fused) > offset + limit
        return SearchResult(
            query=query,
            matches=matches,
            offset=offset,
            next_offset=offset + limit if more else None,
            semantic=semantic,
        )

    # -- the two rankings ---------------------------------------------------------

    async def _embed_query(self, query: str) -> Any:
        if self.embedder is None or not isinstance(self.store, VectorIndex):
            return None
        import numpy as np

        try:
            (vector,) = await self.embedder.embed([query])
        except Exception as exc:  # a provider's outage must not break recall by words
            logger.warning("embedding the query failed (%s); searching by words only", exc)
            return None
        return np.asarray(vector, dtype=np.float32)

    async def _word_scores(
        self, session_id: str, terms: list[str], semantic: bool
    ) -> dict[Key, float]:
        """Messages and summaries holding the query's words, scored by the words' rarity."""
        cap = self.word_cap
        found: list[tuple[set[Key], int]] = []
        pending = await self._summaries_not_embedded(session_id) if semantic else None
        for term in terms:
            hits = await self.store.search(session_id, (term,), limit=cap + 1)
            keys: set[Key] = {("message", session_id, mid) for _, mid in hits}
            if pending is not None:
                word = _word_start(term)
                summaries = [(i, text) for i, text in pending if word.search(text)]
            elif isinstance(self.store, VectorIndex):
                summaries = await self.store.summaries_with(session_id, term, limit=cap)
            else:
                summaries = []
            keys.update(("summary", session_id, summary_id) for summary_id, _ in summaries)
            found.append((keys, len(hits)))
        rare = [(keys, n) for keys, n in found if n <= cap]
        scores: dict[Key, float] = {}
        for keys, _ in rare or found:
            weight = math.log(1.0 + cap / max(1, len(keys)))
            for key in keys:
                scores[key] = scores.get(key, 0.0) + weight
        return scores

    async def _summaries_not_embedded(self, session_id: str) -> list[tuple[str, str]]:
        """Summaries without a vector yet: the ones meaning cannot find, so words must."""
        assert self.embedder is not None and isinstance(self.store, VectorIndex)
        pending = await self.store.summary_backlog(session_id, self.embedder.name, limit=200)
        return [(t.item, t.text) for t in pending]

    async def _meaning_scores(self, session_id: str, query: Any, depth: int) -> dict[Key, float]:
        """The stored texts nearest the query, each message or summary by its best chunk."""
        vectors = await self._vectors(session_id, int(query.shape[0]))
        scores: dict[Key, float] = {}
        async with vectors.lock:  # no rows added while the product runs off the loop
            nearest = await asyncio.to_thread(vectors.nearest, query, depth * 4)
        for item, message_id, similarity in nearest:
            key: Key = (
                ("message", session_id, message_id)
                if message_id is not None
                else ("summary", session_id, item)
            )
            if similarity > scores.get(key, -2.0):
                scores[key] = similarity
            if len(scores) >= depth:
                break
        return scores

    def _known_dimensions(self) -> int | None:
        """The embedder's vector size, None while a provider's is not known yet."""
        assert self.embedder is not None
        try:
            return self.embedder.dimensions
        except ConfigError:
            return None

    async def _vectors(self, session_id: str, dimensions: int) -> SessionVectors:
        assert self.embedder is not None and isinstance(self.store, VectorIndex)
        cache = vector_cache(self.store, self.embedder.name, dimensions)
        return await cache.session(session_id)

    def _fuse(self, by_words: dict[Key, float], by_meaning: dict[Key, float]) -> dict[Key, float]:
        """Each key's fused score: ``weight / (k + rank)`` summed over the rankings,
        the meaning ranking's scaled by the cosine similarity."""
        fusion = self.fusion
        fused: dict[Key, float] = {}
        ranked = sorted(by_words, key=lambda key: -by_words[key])
        for rank, key in enumerate(ranked, start=1):
            fused[key] = fusion.words / (fusion.k + rank)
        # A meaning rank counts as much as the match is close: every stored text has
        # a rank by meaning, and an unrelated one (cosine near 0) must not outrank a
        # text that holds the query's words.
        ranked = sorted(by_meaning, key=lambda key: -by_meaning[key])
        for rank, key in enumerate(ranked, start=1):
            closeness = max(0.0, by_meaning[key])
            fused[key] = fused.get(key, 0.0) + fusion.meaning * closeness / (fusion.k + rank)
        return fused

    # -- the page ---------------------------------------------------------------

    async def _matches(
        self,
        page: list[Key],
        terms: list[str],
        scores: dict[Key, float],
        by_words: dict[Key, float],
        by_meaning: dict[Key, float],
    ) -> list[SearchMatch]:
        built: dict[Key, SearchMatch] = {}
        finder = _words_start(tuple(terms)) if terms else None

        def shown(key: Key, text: str) -> tuple[str, float, Literal["words", "meaning", "both"]]:
            hit = finder.search(text) if finder is not None else None
            snippet = _snippet(text, *hit.span()) if hit else _snippet(text, 0, 0)
            words, meaning = key in by_words, key in by_meaning
            how: Literal["words", "meaning", "both"] = (
                "both" if words and meaning else "words" if words else "meaning"
            )
            return snippet, scores[key], how

        sessions = dict.fromkeys(sid for _, sid, _ in page)
        for session_id in sessions:
            ids = tuple(i for kind, sid, i in page if kind == "message" and sid == session_id)
            if ids:
                messages = await self.store.get_messages_by_id(session_id, ids)
                live = await self.store.covering_summaries(session_id, ids)
                for m in messages:
                    key: Key = ("message", session_id, m.id)
                    text = message_text(m)
                    snippet, score, how = shown(key, text)
                    built[key] = SearchMatch(
                        kind="message",
                        id=m.id,
                        session_id=session_id,
                        message_id=m.id,
                        seq=m.message.seq,
                        role=m.role,
                        created_at=m.message.created_datetime,
                        snippet=snippet,
                        text=text,
                        score=score,
                        matched_by=how,
                        summary_id=live.get(m.id),
                    )
            for kind, sid, summary_id in page:
                if kind != "summary" or sid != session_id:
                    continue
                try:
                    summary = await self.store.get_summary(summary_id)
                except KeyError:  # erased since this process read its vector: not shown
                    continue
                key = ("summary", session_id, summary_id)
                snippet, score, how = shown(key, summary.text)
                built[key] = SearchMatch(
                    kind="summary",
                    id=summary_id,
                    session_id=session_id,
                    message_id=None,
                    seq=summary.first_seq,
                    role="summary",
                    created_at=datetime.fromtimestamp(summary.created_at, tz=UTC),
                    snippet=snippet,
                    text=summary.text,
                    score=score,
                    matched_by=how,
                    summary_id=await self._top_of(summary_id),
                )
        return [built[key] for key in page if key in built]

    async def _top_of(self, summary_id: str) -> str | None:
        """The summary in the context that covers ``summary_id`` (None: it is there itself)."""
        top = None
        node = await self.store.parent_of(summary_id)
        while node is not None:
            top = node
            node = await self.store.parent_of(node)
        return top
