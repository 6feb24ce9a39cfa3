"""Opening a session: a new one persisted, a stored one resumed, and the parts built.

Both paths settle the model's limits before anything else, so a budget that
leaves no usable context fails before a store is opened, and both release the
store again if the session cannot be read or written. Only creating a session
may create a database; resuming one or listing them never does. Loading also
stores the replies a dead process was streaming as interrupted (:mod:`.drafts`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from mnesis.errors import ConfigError, DatabaseNotFoundError
from mnesis.events.bus import EventBus
from mnesis.llm import LLMProvider, default_provider
from mnesis.llm.limits import ModelLimits, resolve_limits, usable_context
from mnesis.models.config import MnesisConfig, absolute_path
from mnesis.models.ids import new_id
from mnesis.models.info import SessionInfo
from mnesis.session import inputs
from mnesis.session.core import SessionCore, SessionTotals
from mnesis.session.drafts import settle_interrupted_replies
from mnesis.session.embedding import session_embedder
from mnesis.session.live_context import LiveContext
from mnesis.session.tokens import TokenCounter
from mnesis.store import (
    ContextChanges,
    SessionRecord,
    Store,
    acquire_store,
    config_json,
    release_store,
    resolve_db_url,
)


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class SessionOpener(Generic[S]):
    """What ``MnesisSession.open()`` returns: ``async with`` it, or ``await`` it."""

    def __init__(self, factory: Callable[[], Awaitable[S]]) -> None:
        self._factory = factory
        self._session: S | None = None

    async def __aenter__(self) -> S:
        self._session = await self._factory()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def __await__(self) -> Generator[Any, None, S]:
        return self._factory().__await__()


def check_one_db_path(db_path: str | os.PathLike[str] | None, config: MnesisConfig | None) -> None:
    """``db_path=`` and a ``config.store.db_path`` (or ``url``) set explicitly
    cannot both decide where the session lives."""
    if db_path is None or config is None:
        return
    store = config.store
    if "db_path" in store.model_fields_set or store.url:
        raise ConfigError(
            "the database is given twice: pass db_path= or set config.store.db_path, not both"
        )


def _expanded(db_path: str | os.PathLike[str] | None) -> str | None:
    """``db_path=`` as ``StoreConfig.db_path`` takes it: ``~`` and relative paths made absolute."""
    return None if db_path is None else str(absolute_path(db_path))


def stored_config(config_json: str) -> MnesisConfig:
    """A session's stored configuration, brought within today's bounds (a
    session stored before a bound existed still loads)."""
    data = json.loads(config_json)
    compaction = data.get("compaction")
    if isinstance(compaction, dict) and isinstance(compaction.get("compaction_output_budget"), int):
        budget = compaction["compaction_output_budget"]
        compaction["compaction_output_budget"] = min(max(budget, 1_000), 100_000)
    session = data.get("session")
    if isinstance(session, dict) and isinstance(session.get("doom_loop_threshold"), int):
        session["doom_loop_threshold"] = min(max(session["doom_loop_threshold"], 2), 10)
    return MnesisConfig.model_validate(data)


async def create_core(
    *,
    model: str,
    agent: str,
    parent_id: str | None,
    config: MnesisConfig | None,
    system_prompt: str,
    db_path: str | os.PathLike[str] | None,
    provider: LLMProvider | None,
    event_bus: EventBus | None,
    session_id: str | None,
) -> SessionCore:
    """Persist a new session and build its core."""
    inputs.check_new_session(model, system_prompt, agent)
    check_one_db_path(db_path, config)
    db_path = _expanded(db_path)
    config = config or MnesisConfig()
    session_embedder(config)  # an embedder that cannot be used is refused before any write
    limits = resolve_limits(model, config.model_overrides)
    usable = usable_context(limits, config)
    store = await acquire_store(resolve_db_url(db_path, config.store), config.store)
    record = SessionRecord(
        id=session_id or new_id("sess"),
        model=model,
        agent=agent,
        parent_id=parent_id,
        system_prompt=system_prompt,
        config_json=config_json(config.model_dump(mode="json", exclude={"store"})),
        created_at=time.time(),
    )
    try:
        await store.create_session(record)
    except BaseException:
        await release_store(store)
        raise
    return _build_core(record, store, config, limits, usable, provider, event_bus)


async def load_core(
    session_id: str,
    config: MnesisConfig | None,
    db_path: str | os.PathLike[str] | None,
    provider: LLMProvider | None,
    event_bus: EventBus | None,
) -> SessionCore:
    """Read a stored session (its config too, unless given) and build its core."""
    inputs.check_session_id(session_id)
    check_one_db_path(db_path, config)
    db_path = _expanded(db_path)
    store_config = (config or MnesisConfig()).store
    store = await acquire_store(resolve_db_url(db_path, store_config), store_config, create=False)
    try:
        record = await store.get_session(session_id)
        await settle_interrupted_replies(store, session_id, record.model)
        if config is None:
            config = stored_config(record.config_json)
        session_embedder(config)
        limits = resolve_limits(record.model, config.model_overrides)
        usable = usable_context(limits, config)
        # The view with its rewrite count, so the first catch-up reads only what
        # other writers appended since, not the whole view again.
        view = await store.context_changes(session_id, None)
    except BaseException:
        await release_store(store)
        raise
    return _build_core(record, store, config, limits, usable, provider, event_bus, view)


async def stored_sessions(db_path: str | None, config: MnesisConfig | None) -> list[SessionInfo]:
    """Every session in a database, newest first; none (and no file made) when the
    database does not exist yet."""
    store_config = (config or MnesisConfig()).store
    try:
        store = await acquire_store(
            resolve_db_url(db_path, store_config), store_config, create=False
        )
    except DatabaseNotFoundError:
        return []
    try:
        return await store.list_sessions()
    finally:
        await release_store(store)


def _build_core(
    record: SessionRecord,
    store: Store,
    config: MnesisConfig,
    limits: ModelLimits,
    usable: int,
    provider: LLMProvider | None,
    event_bus: EventBus | None,
    view: ContextChanges | None = None,
) -> SessionCore:
    live = (
        LiveContext(store, record.id)
        if view is None
        else LiveContext(store, record.id, view.entries, view.version, view.rewrites)
    )
    return SessionCore(
        record=record,
        store=store,
        config=config,
        provider=provider or default_provider(),
        limits=limits,
        usable_tokens=usable,
        bus=event_bus or EventBus(),
        live=live,
        counter=TokenCounter(record.model),
        totals=SessionTotals(record.tokens, record.cost, record.turn_count),
    )
