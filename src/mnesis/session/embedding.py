"""The background embedding worker, and which embedder a session uses.

Why in the background: an embedding costs milliseconds of CPU per text (the
offline model does about 125 texts a second on two cores), a turn's write a
few hundred microseconds. So a turn only stores its messages; one worker per
store and embedder, shared by the process's sessions, embeds them later:

- it waits for a quiet moment (no write noticed for ``quiet`` seconds) before
  each batch, so a burst of turns runs at full speed and the backlog is
  embedded after it;
- it scans each watched session's messages after the last one it scanned
  (:meth:`~mnesis.store.base.VectorIndex.embedding_backlog`), and from the
  start when it begins watching one: after a restart or a crash it finds
  whatever has no vector, and nothing else is embedded twice;
- a vector is stored in the same write as the rest of its batch, so a killed
  process loses at most the batch it was computing;
- a search meanwhile finds what is not embedded yet by its words.

Without ``mnesis[semantic]`` the default (``"auto"``) is words only, and the
first search says once how to enable meaning-based recall.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mnesis.errors import ConfigError, LLMTransientError
from mnesis.events.bus import EventBus, MnesisEvent
from mnesis.llm.embedding import Embedder
from mnesis.models.config import MnesisConfig
from mnesis.recall.vectors import text_chunks
from mnesis.store.base import Store, VectorIndex
from mnesis.store.vectors import EmbeddingTask, NewEmbedding, vector_bytes

logger = logging.getLogger("mnesis.session")

_HINT = (
    "meaning-based recall is off: search() finds words only. "
    "Install it with: pip install 'mnesis[semantic]'"
)
_warned = False


def warn_words_only() -> None:
    """Log, once per process, that search runs on words only and how to change that."""
    global _warned
    if not _warned:
        _warned = True
        logger.warning(_HINT)


_embedders: dict[str, Embedder | None] = {}


def embedder_for(spec: str) -> Embedder | None:
    """The embedder ``spec`` names (one instance per spec in the process).

    ``"auto"``: the offline default if ``mnesis[semantic]`` is installed, else
    None (words only); ``"local"``: the offline default or ``ConfigError``;
    ``"none"``: None; anything else: a litellm embedding model of that name.
    """
    if spec in _embedders:
        return _embedders[spec]
    from mnesis.llm.embedders import LiteLLMEmbedder, default_embedder, semantic_available

    chosen: Embedder | None
    if spec == "none":
        chosen = None
    elif spec == "auto":
        chosen = default_embedder() if semantic_available() else None
    elif spec == "local":
        chosen = default_embedder()
    else:
        chosen = LiteLLMEmbedder(spec)
    _embedders[spec] = chosen
    return chosen


def session_embedder(config: MnesisConfig) -> Embedder | None:
    """The embedder a session's configuration asks for."""
    return embedder_for(config.recall.embedder)


@dataclass(slots=True)
class _Watch:
    """Where the worker is in one session's messages."""

    after_seq: int = 0  # every message up to here is done (but open tool calls)
    after_id: str | None = None  # the message at after_seq (None: not known)
    hold_seq: int | None = None  # the first open tool call seen in this pass
    users: int = 1


@dataclass(slots=True)
class EmbeddingStats:
    """What a worker has done since it started."""

    texts: int = 0  # chunks embedded
    items: int = 0  # bodies and summaries completed
    errors: int = 0
    skipped: int = 0  # chunks given up on: found by their words only
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)


class EmbeddingWorker:
    """Embeds the backlog of the watched sessions of one store, in the background.

    Args:
        store: Where the messages and vectors are.
        embedder: The model.
        batch: Chunks per embed call and per write.
        page: Messages read per backlog scan.
        quiet: Seconds without a noticed write before a batch starts.
        backoff: Seconds before the first retry after a failure (doubling, at most 30).

    A chunk the embedder keeps refusing (not a transient provider error) must not
    hold up the rest of its session: after ``ISOLATE_AFTER`` failed batches it is
    sent alone, and after ``GIVE_UP_AFTER`` failures in all it is recorded as
    done without a vector (a warning says so; its words still find it).
    """

    ISOLATE_AFTER = 3
    GIVE_UP_AFTER = 6
    OPEN_CALL_HORIZON = 500  # an open tool call older than this many messages is left
    # to the next restart's scan rather than rescanned on every pass

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        batch: int = 32,
        page: int = 100,
        quiet: float = 0.05,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(store, VectorIndex):
            raise ConfigError(f"the store {store.url} cannot hold vectors")
        self.store = store
        self._vectors: VectorIndex = store
        self.embedder = embedder
        self.batch = batch
        self.page = page
        self.quiet = quiet
        self.backoff = backoff
        self.stats = EmbeddingStats()
        self._failures: dict[tuple[str, int], int] = {}  # (item, chunk): failed attempts
        self._watched: dict[str, _Watch] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._last_write = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- what to work on ----------------------------------------------------------

    def watch(self, session_id: str) -> None:
        """Embed this session's backlog, from its first message, and what it adds."""
        if session_id in self._watched:
            self._watched[session_id].users += 1
        else:
            self._watched[session_id] = _Watch()
        self._start()
        self._wake.set()

    def unwatch(self, session_id: str) -> None:
        """Stop following a session (when its last user here closes it)."""
        held = self._watched.get(session_id)
        if held is not None:
            held.users -= 1
            if held.users <= 0:
                del self._watched[session_id]

    @property
    def watching(self) -> bool:
        return bool(self._watched)

    def notice(self, *_: object) -> None:
        """A write happened: wait for quiet, then embed (usable as an event handler)."""
        self._last_write = time.monotonic()
        self._idle.clear()
        self._wake.set()

    # -- running ------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="mnesis-embedding"
            )

    async def drain(self) -> None:
        """Return once everything watched is embedded (for tools, tests, benchmarks)."""
        if not self._watched or self._closed:
            return
        self._start()
        self._idle.clear()
        self._wake.set()
        await self._idle.wait()

    async def close(self) -> None:
        """Stop; a batch being computed is dropped (it is embedded again next time)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._idle.set()

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            try:
                while await self._one_batch():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store or the model failed: try again later
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                logger.warning("background embedding failed (will retry): %s", exc)
                self._idle.set()
                await asyncio.sleep(min(30.0, self.backoff * 2 ** min(self.stats.errors - 1, 6)))
                self._wake.set()
                continue
            if not self._wake.is_set():
                self._idle.set()

    async def _wait_for_quiet(self) -> None:
        while True:
            calm = time.monotonic() - self._last_write
            if calm >= self.quiet:
                return
            await asyncio.sleep(self.quiet - calm)

    async def _one_batch(self) -> bool:
        """Embed one batch of some watched session's backlog; False when none is left."""
        await self._wait_for_quiet()
        for session_id in list(self._watched):
            tasks = await self._next_tasks(session_id)
            if tasks:
                await self._embed(tasks)
                return True
        return False

    async def _next_tasks(self, session_id: str) -> list[EmbeddingTask]:
        """Up to ``batch`` chunks' worth of the session's backlog, summaries first."""
        name = self.embedder.name
        summaries = await self._vectors.summary_backlog(session_id, name, limit=self.batch)
        if summaries:
            return summaries
        watch = self._watched.get(session_id)
        while watch is not None:
            found = await self._vectors.embedding_backlog(
                session_id, name, after_seq=watch.after_seq, limit=self.page
            )
            if found.first_open_seq is not None and watch.hold_seq is None:
                watch.hold_seq = found.first_open_seq
            if found.last_seq == watch.after_seq:  # the end: rescan from the open call
                if await self._erased_since(session_id, watch):
                    watch.after_seq, watch.after_id, watch.hold_seq = 0, None, None
                    continue  # the latest messages were erased: rescan (it skips what is done)
                hold, watch.hold_seq = watch.hold_seq, None
                if hold is not None and found.last_seq - hold < self.OPEN_CALL_HORIZON:
                    watch.after_seq, watch.after_id = hold - 1, None
                return []
            if found.tasks:
                return list(found.tasks)  # the cursor moves once they are stored
            watch.after_seq, watch.after_id = found.last_seq, found.last_message_id
        return []

    async def _erased_since(self, session_id: str, watch: _Watch) -> bool:
        """Whether the message the cursor stands on is gone (erased, perhaps replaced
        by a new one with its sequence number, which a scan after it would skip)."""
        if watch.after_id is None or watch.after_seq <= 0:
            return False
        there = await self._vectors.embedding_backlog(
            session_id, self.embedder.name, after_seq=watch.after_seq - 1, limit=1
        )
        return there.last_message_id != watch.after_id

    async def _embed(self, tasks: list[EmbeddingTask]) -> None:
        """Embed tasks a batch of chunks at a time, storing each batch as it is done."""
        pieces = [(t, n, chunk) for t in tasks for n, chunk in enumerate(text_chunks(t.text))]
        empty = [t for t in tasks if not t.text.strip()]
        rows = [NewEmbedding(t.session_id, t.item, 0, t.message_id, b"") for t in empty]
        if rows:
            await self._vectors.save_embeddings(self.embedder.name, tuple(rows))
        refused: Exception | None = None  # raised once the other batches are stored
        for group in self._groups(pieces):
            await self._wait_for_quiet()
            if await self._given_up(group):
                continue
            try:
                vectors = await self.embedder.embed([chunk for _, _, chunk in group])
                self._check(vectors, len(group))
            except LLMTransientError:
                raise  # the provider, not the text: retried as it is
            except Exception as exc:
                for t, n, _ in group:
                    self._failures[(t.item, n)] = self._failures.get((t.item, n), 0) + 1
                refused = refused or exc
                continue
            for t, n, _ in group:
                self._failures.pop((t.item, n), None)
            stored = tuple(
                NewEmbedding(t.session_id, t.item, n, t.message_id, vector_bytes(v))
                for (t, n, _), v in zip(group, vectors, strict=True)
            )
            await self._vectors.save_embeddings(self.embedder.name, stored)
            self.stats.texts += len(stored)
        if refused is not None:
            raise refused
        self.stats.items += len(tasks)

    def _groups(
        self, pieces: list[tuple[EmbeddingTask, int, str]]
    ) -> list[list[tuple[EmbeddingTask, int, str]]]:
        """Batches of at most ``batch`` chunks; a chunk that failed often goes alone."""
        groups: list[list[tuple[EmbeddingTask, int, str]]] = []
        current: list[tuple[EmbeddingTask, int, str]] = []
        for piece in pieces:
            t, n, _ = piece
            if self._failures.get((t.item, n), 0) >= self.ISOLATE_AFTER:
                groups.append([piece])
                continue
            current.append(piece)
            if len(current) == self.batch:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        return groups

    async def _given_up(self, group: list[tuple[EmbeddingTask, int, str]]) -> bool:
        """Record a chunk that failed ``GIVE_UP_AFTER`` times as done without a vector."""
        if len(group) != 1:
            return False
        t, n, _ = group[0]
        failures = self._failures.get((t.item, n), 0)
        if failures < self.GIVE_UP_AFTER:
            return False
        row = NewEmbedding(t.session_id, t.item, n, t.message_id, b"")
        await self._vectors.save_embeddings(self.embedder.name, (row,))
        del self._failures[(t.item, n)]
        self.stats.skipped += 1
        logger.warning(
            "embedder %r failed %d times on chunk %d of %s (message %s); it is left "
            "without a vector: search finds it by its words only",
            self.embedder.name,
            failures,
            n,
            t.item,
            t.message_id,
        )
        return True

    def _check(self, vectors: Sequence[Sequence[float]], expected: int) -> None:
        """``ValueError`` unless ``vectors`` are ``expected`` finite vectors of the
        embedder's size: a wrong one stored would mark its text done for good."""
        name = self.embedder.name
        if not isinstance(vectors, Sequence) or len(vectors) != expected:
            got = len(vectors) if isinstance(vectors, Sequence) else type(vectors).__name__
            raise ValueError(f"embedder {name!r} returned {got} vectors for {expected} texts")
        try:
            size = self.embedder.dimensions
        except ConfigError:  # a provider's size is known once it answered
            size = len(vectors[0]) if vectors else 0
        for vector in vectors:
            if len(vector) != size:
                raise ValueError(
                    f"embedder {name!r} returned a vector of {len(vector)} floats, not {size}"
                )
            if not all(math.isfinite(x) for x in vector):
                raise ValueError(f"embedder {name!r} returned a vector that is not all numbers")


# -- one worker per store and embedder in the process ------------------------------------

_workers: dict[tuple[int, str], EmbeddingWorker] = {}


def worker_for(store: Store, embedder: Embedder) -> EmbeddingWorker:
    """The process's worker for ``store`` and ``embedder`` (made on first use)."""
    key = (id(store), embedder.name)
    worker = _workers.get(key)
    if worker is None or worker._closed or worker.store is not store:
        worker = _workers[key] = EmbeddingWorker(store, embedder)
    return worker


async def release_worker(worker: EmbeddingWorker, session_id: str) -> None:
    """Stop following ``session_id``; the worker stops when it follows none."""
    worker.unwatch(session_id)
    if not worker.watching:
        for key, held in list(_workers.items()):
            if held is worker:
                del _workers[key]
        await worker.close()


def pending_texts(tasks: Sequence[EmbeddingTask]) -> int:
    """How many chunks ``tasks`` hold (for progress reports)."""
    return sum(len(text_chunks(t.text)) for t in tasks)


class SessionEmbedding:
    """A session's part in meaning-based recall: its embedder, and the worker
    following it (woken by its writes and compactions).

    Raises:
        ConfigError: the configuration names an embedder that cannot be used
            (``"local"`` without ``mnesis[semantic]``).
    """

    def __init__(self, store: Store, session_id: str, config: MnesisConfig, bus: EventBus) -> None:
        self.session_id = session_id
        self.embedder = session_embedder(config)
        # "auto" found no extra: the first search says how to enable meaning-based recall.
        self.hint_words_only = self.embedder is None and config.recall.embedder == "auto"
        self.worker: EmbeddingWorker | None = None
        self._bus = bus
        writable = not getattr(store, "read_only", False)  # a read-only file: search only
        if self.embedder is not None and isinstance(store, VectorIndex) and writable:
            worker = self.worker = worker_for(store, self.embedder)
            worker.watch(session_id)
            for event in (MnesisEvent.MESSAGE_CREATED, MnesisEvent.COMPACTION_COMPLETED):
                bus.subscribe(event, self._notice)

    def _notice(self, event: MnesisEvent, payload: object) -> None:
        if self.worker is not None:
            self.worker.notice()

    async def drain(self) -> None:
        """Wait until everything stored so far is embedded (at once without a worker)."""
        if self.worker is not None:
            await self.worker.drain()

    async def close(self) -> None:
        """Stop following the session (the worker stops with its last session)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            self._bus.unsubscribe_all(self._notice)
            await release_worker(worker, self.session_id)
