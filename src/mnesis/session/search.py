"""Search across sessions of a store: user-level memory.

``mnesis.search(query)`` ranks every session's stored history (or the ones
named) by words and meaning, as ``session.search`` ranks one session's. It
opens the store the way sessions find theirs (``db_path``, then the config,
then ``$MNESIS_DB_URL``, then ``~/.mnesis/sessions.db``) and only reads:
sessions embed their own messages while they are open (or with
``embed_backlog=True`` here, which embeds what is missing first).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mnesis.errors import InvalidInputError
from mnesis.models.config import MnesisConfig
from mnesis.recall.models import SearchResult
from mnesis.recall.search import HybridSearch
from mnesis.session.embedding import EmbeddingWorker, session_embedder, warn_words_only
from mnesis.store import acquire_store, release_store, resolve_db_url
from mnesis.store.base import VectorIndex

MAX_SESSIONS = 10_000


async def search(
    query: str,
    session_ids: Sequence[str] | None = None,
    *,
    limit: int = 10,
    offset: int = 0,
    db_path: str | os.PathLike[str] | None = None,
    config: MnesisConfig | None = None,
    embed_backlog: bool = False,
) -> SearchResult:
    """The best matches for ``query`` across sessions of a store, best first.

    Args:
        query: What to look for, in any words.
        session_ids: The sessions to search; None: every session in the store.
        limit: Matches per page (1 to 100).
        offset: Matches to skip (paging).
        db_path: Database file or URL; default as sessions find theirs.
        config: Its ``recall.embedder`` picks the embedder (default: the offline
            one when ``mnesis[semantic]`` is installed, else words only).
        embed_backlog: First embed whatever the sessions have not embedded yet.

    Raises:
        InvalidInputError: A malformed query, page or session list.
        SessionNotFoundError: A named session is not in the store.
        DatabaseNotFoundError: The database does not exist.
    """
    config = config or MnesisConfig()
    if session_ids is not None:
        if isinstance(session_ids, str) or not all(isinstance(s, str) for s in session_ids):
            raise InvalidInputError("session_ids must be a list of session ids")
        if len(session_ids) > MAX_SESSIONS:
            raise InvalidInputError(f"search at most {MAX_SESSIONS:,} sessions at once")
    embedder = session_embedder(config)
    if embedder is None and config.recall.embedder == "auto":
        warn_words_only()
    url = resolve_db_url(db_path, config.store)
    store = await acquire_store(url, config.store, create=False)
    try:
        if session_ids is None:
            ids = [info.id for info in await store.list_sessions()]
        else:
            ids = list(dict.fromkeys(session_ids))
            for session_id in ids:
                await store.get_session(session_id)  # SessionNotFoundError if unknown
        if embed_backlog and embedder is not None and isinstance(store, VectorIndex) and ids:
            worker = EmbeddingWorker(store, embedder, quiet=0.0)
            try:
                for session_id in ids:
                    worker.watch(session_id)
                await worker.drain()
            finally:
                await worker.close()
        return await HybridSearch(store, embedder).search(query, ids, limit=limit, offset=offset)
    finally:
        await release_store(store)
