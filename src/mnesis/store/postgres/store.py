"""PostgreSQL backend: a connection pool, safe for many processes and hosts.

Every public write is one transaction that first locks the session's row
(``SELECT ... FOR NO KEY UPDATE``), so appenders in any number of processes
queue up per session and never hand out the same sequence number or context
position. An append (a turn) is a single statement, one round trip, unless it
meets another writer of the session (:mod:`.append`). Reads run in a
read-only, repeatable-read transaction: one consistent snapshot however many
statements they take. Every statement is
parameterised; no SQL is built from input. Driver errors are translated in one
place (:mod:`.errors`) and never name the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mnesis.errors import ConfigError, MnesisStoreError
from mnesis.models.message import TokenUsage
from mnesis.models.results import TurnSnapshot
from mnesis.store.postgres import append as one_call
from mnesis.store.postgres.dialect import PostgresDialect, run
from mnesis.store.postgres.errors import check_dsn, import_asyncpg, redact_url, translate_error
from mnesis.store.postgres.migrate import migrate
from mnesis.store.records import AppendOutcome, NewMessage
from mnesis.store.sql.backend import SQLBackend
from mnesis.store.sql.statements import Steps

T = TypeVar("T")


async def _keep_session_state(conn: Any) -> None:
    """The pool's reset of a released connection: nothing to send.

    asyncpg's default reset (unlock advisory locks, close cursors, unlisten,
    ``RESET ALL``) is one more round trip per call, a turn's second. The store
    leaves nothing to reset: its transactions end before release (and asyncpg
    still rolls back one left open), it opens no cursor, listens to nothing,
    sets nothing beyond a transaction, and its one session-level lock, the
    compaction lock, is unlocked or its connection closed.
    """


class PostgresStore(SQLBackend):
    """The PostgreSQL implementation of :class:`mnesis.store.base.Store`."""

    dialect = PostgresDialect()

    def __init__(
        self, dsn: str, *, timeout: float = 30.0, min_size: int = 1, max_size: int = 10
    ) -> None:
        check_dsn(dsn)
        self._dsn = dsn
        self.url = redact_url(dsn)
        self._timeout = timeout
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the pool works on this loop only

    async def open(self) -> PostgresStore:
        """Connect, refuse a newer schema and run pending migrations."""
        asyncpg = import_asyncpg()
        self._loop = asyncio.get_running_loop()
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                command_timeout=None,
                reset=_keep_session_state,
            )
            async with self._pool.acquire() as conn:
                await migrate(conn, self.url)
        except BaseException as exc:
            self._closed = True
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
            self._raise_translated(exc)
            if isinstance(exc, ValueError | TypeError):  # asyncpg refused the URL's options
                raise ConfigError(
                    f"invalid PostgreSQL URL {self.url}: {self._redact(exc)}"
                ) from None
            raise
        return self

    def _redact(self, exc: BaseException) -> str:
        """The error's text without the password, should the driver have quoted it."""
        text = str(exc)
        password = urlsplit(self._dsn).password
        return text.replace(password, "***") if password else text

    def _raise_translated(self, exc: BaseException) -> None:
        """Raise the mnesis error for a driver error; return for any other."""
        error = translate_error(exc, self.url)
        if error is not None:
            raise error from exc

    def _pool_or_raise(self) -> Any:
        if self._closed or self._pool is None:
            raise MnesisStoreError(f"store {self.url} is closed")
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction; driver errors translated."""
        pool = self._pool_or_raise()
        try:
            async with pool.acquire() as conn:
                if write:
                    transaction = conn.transaction()
                else:
                    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                async with transaction:
                    yield conn
        except Exception as exc:
            self._raise_translated(exc)
            raise

    async def _write(self, steps: Steps[T]) -> T:
        async with self._connection(write=True) as conn:
            return await run(conn, steps)

    async def append(
        self,
        session_id: str,
        messages: tuple[NewMessage, ...],
        *,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        snapshot: TurnSnapshot | None = None,
    ) -> AppendOutcome:
        """The shared append as one statement: one round trip, no ``BEGIN`` /
        ``COMMIT``; the shared algorithm when that statement missed another
        writer's commit (see :mod:`.append`)."""
        tail = None if snapshot is None else one_call.turn_json_tail(snapshot)
        if snapshot is not None and tail is None:  # a snapshot JSON it cannot number
            return await super().append(
                session_id, messages, usage=usage, cost=cost, snapshot=snapshot
            )
        args = one_call.arguments(session_id, time.time(), messages, usage, cost, tail)
        pool = self._pool_or_raise()
        try:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(one_call.STATEMENT, *args)
        except Exception as exc:
            self._raise_translated(exc)
            raise
        done = one_call.outcome(session_id, messages, row)
        if done is None:  # another writer's commit came between: lock, then read
            return await super().append(
                session_id, messages, usage=usage, cost=cost, snapshot=snapshot
            )
        return done

    async def _read(self, steps: Steps[T]) -> T:
        async with self._connection(write=False) as conn:
            return await run(conn, steps)

    def _read_blocking(self, steps: Steps[T]) -> T:
        """A read on a connection of its own, in a thread with its own event loop
        (the pool's connections belong to the pool's loop), its caller waiting."""
        self._pool_or_raise()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnesis-pg-read") as thread:
            try:
                return thread.submit(asyncio.run, self._read_alone(steps)).result()
            except Exception as exc:
                self._raise_translated(exc)
                raise

    async def _read_alone(self, steps: Steps[T]) -> T:
        conn = await import_asyncpg().connect(self._dsn, timeout=self._timeout)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await run(conn, steps)
        finally:
            await conn.close()

    def serves_running_loop(self) -> bool:
        try:
            return self._loop is asyncio.get_running_loop()
        except RuntimeError:
            return False

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        """A session-level advisory lock on its own connection, held for the pass.

        The server drops the lock with the connection, so a holder that dies (or
        loses its connection) frees it at once; a connection whose lock or unlock
        fails (or is cancelled) is closed rather than pooled with the lock maybe
        still on it: the pool does not reset connections (:func:`_keep_session_state`).
        """
        pool = self._pool_or_raise()
        key = "mnesis-compaction:" + session_id
        try:
            conn = await pool.acquire()
        except Exception as exc:
            self._raise_translated(exc)
            raise
        try:
            try:
                held = bool(
                    await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
                )
            except BaseException:
                conn.terminate()  # the lock may have been taken: it ends with the connection
                raise
            try:
                yield held
            finally:
                if held:
                    try:
                        await conn.execute(
                            "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key
                        )
                    except BaseException:
                        conn.terminate()  # the lock ends with the connection
                        raise
        except Exception as exc:
            self._raise_translated(exc)
            raise
        finally:
            await pool.release(conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except Exception as exc:
                pool.terminate()
                self._raise_translated(exc)
                raise
