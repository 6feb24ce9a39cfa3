"""Each process's copy of a session's stored vectors, searched by brute force.

Why brute force: an exact scan of 100,000 vectors of 384 float32 is one matrix
product, about 2 ms with numpy on two cores: no approximate index (HNSW's
recall drops unless its effort is raised to the same cost), no database
extension (the stdlib ``sqlite3`` often cannot load one; pgvector is not on
every server), and nothing to rebuild. The copy is read once and then only
what was stored after it (by the rows' storage order), so a search costs one
small read plus the product.

numpy is imported when a copy is first made, never by ``import mnesis``: it
comes with ``mnesis[semantic]``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from mnesis.store.base import VectorIndex

logger = logging.getLogger("mnesis.recall")

_LOAD_PAGE = 10_000
CHUNK_CHARS = 1_000  # about 250 tokens: what the offline model reads of one text
MAX_CHUNKS = 8  # of one text; beyond them (a long tool output) it is found by its words


def text_chunks(text: str) -> list[str]:
    """The pieces of ``text`` embedded one by one: up to ``MAX_CHUNKS`` of at most
    ``CHUNK_CHARS`` characters, cut at whitespace; none for a blank text."""
    words = text.split()
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for word in words:
        word = word[:CHUNK_CHARS]
        if current and size + 1 + len(word) > CHUNK_CHARS:
            chunks.append(" ".join(current))
            if len(chunks) == MAX_CHUNKS:
                return chunks
            current, size = [], 0
        current.append(word)
        size += len(word) + (1 if size else 0)
    if current:
        chunks.append(" ".join(current))
    return chunks


@dataclass(slots=True)
class SessionVectors:
    """One session's vectors under one embedder, in storage order."""

    dimensions: int
    matrix: Any = None  # numpy float32 array, rows [0, count) used
    items: list[str] = field(default_factory=list)
    message_ids: list[str | None] = field(default_factory=list)
    last_id: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def count(self) -> int:
        return len(self.items)

    def add(self, rows: list[tuple[str, str | None, bytes]]) -> None:
        """Append ``(item, message_id, vector bytes)`` rows of the right size."""
        import numpy as np

        size = self.dimensions * 4
        good = [r for r in rows if len(r[2]) == size]
        if len(good) < len(rows):
            wrong = sum(1 for r in rows if r[2] and len(r[2]) != size)
            if wrong:
                logger.warning(
                    "%d stored vectors are not %d floats long; they are ignored", wrong, size // 4
                )
        if not good:
            return
        block = np.frombuffer(b"".join(r[2] for r in good), dtype="<f4").reshape(
            len(good), self.dimensions
        )
        needed = self.count + len(good)
        if self.matrix is None or self.matrix.shape[0] < needed:
            capacity = max(1024, needed * 3 // 2)
            grown = np.empty((capacity, self.dimensions), dtype=np.float32)
            if self.matrix is not None:
                grown[: self.count] = self.matrix[: self.count]
            self.matrix = grown
        self.matrix[self.count : needed] = block
        self.items.extend(r[0] for r in good)
        self.message_ids.extend(r[1] for r in good)

    def nearest(self, query: Any, k: int) -> list[tuple[str, str | None, float]]:
        """The ``k`` rows most similar to ``query`` (cosine: vectors are unit length),
        best first, as ``(item, message_id, similarity)``."""
        import numpy as np

        if not self.count or k <= 0:
            return []
        scores = self.matrix[: self.count] @ query
        k = min(k, self.count)
        top = np.argpartition(-scores, k - 1)[:k] if k < self.count else np.arange(self.count)
        order = top[np.argsort(-scores[top], kind="stable")]
        return [(self.items[i], self.message_ids[i], float(scores[i])) for i in order]


class VectorCache:
    """The vectors of one store under one embedder, per session, kept up to date."""

    def __init__(self, store: VectorIndex, embedder: str, dimensions: int) -> None:
        self._store = store
        self.embedder = embedder
        self.dimensions = dimensions
        self._sessions: dict[str, SessionVectors] = {}

    async def session(self, session_id: str) -> SessionVectors:
        """The session's vectors, with everything stored since the last call read in."""
        vectors = self._sessions.get(session_id)
        if vectors is None:
            vectors = self._sessions[session_id] = SessionVectors(self.dimensions)
        async with vectors.lock:
            while True:
                rows = await self._store.load_embeddings(
                    session_id, self.embedder, after_id=vectors.last_id, limit=_LOAD_PAGE
                )
                if not rows:
                    break
                vectors.last_id = rows[-1].id
                vectors.add([(r.item, r.message_id, r.vector) for r in rows])
                if len(rows) < _LOAD_PAGE:
                    break
        return vectors


_caches: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], VectorCache]] = (
    weakref.WeakKeyDictionary()
)


def vector_cache(store: VectorIndex, embedder: str, dimensions: int) -> VectorCache:
    """The process's cache for ``store`` and ``embedder`` (one per pair, made on first use)."""
    per_store = _caches.setdefault(store, {})
    key = (embedder, dimensions)
    cache = per_store.get(key)
    if cache is None:
        cache = per_store[key] = VectorCache(store, embedder, dimensions)
    return cache
