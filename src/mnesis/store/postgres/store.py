"""PostgreSQL backend: a connection pool, safe for many processes and hosts.

Every public write is one transaction that first locks the session's row
(``SELECT ... FOR NO KEY UPDATE``), so appenders in any number of processes
queue up per session and never hand out the same sequence number or context
position. Reads run in a read-only, repeatable-read transaction: one
consistent snapshot however many statements they take. Every statement is
parameterised; no SQL is built from input. Driver errors are translated in one
place (:mod:`.errors`) and never name the password.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mnesis.errors import ConfigError, MnesisStoreError
from mnesis.store.postgres.dialect import PostgresDialect, run
from mnesis.store.postgres.errors import check_dsn, import_asyncpg, redact_url, translate_error
from mnesis.store.postgres.migrate import migrate
from mnesis.store.sql.backend import SQLBackend
from mnesis.store.sql.statements import Steps

T = TypeVar("T")


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

    async def _read(self, steps: Steps[T]) -> T:
        async with self._connection(write=False) as conn:
            return await run(conn, steps)

    def serves_running_loop(self) -> bool:
        try:
            return self._loop is asyncio.get_running_loop()
        except RuntimeError:
            return False

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        """A session-level advisory lock on its own connection, held for the pass.

        The server drops the lock with the connection, so a holder that dies (or
        loses its connection) frees it at once; a connection whose unlock fails
        is closed rather than pooled with the lock still on it.
        """
        pool = self._pool_or_raise()
        key = "mnesis-compaction:" + session_id
        try:
            conn = await pool.acquire()
        except Exception as exc:
            self._raise_translated(exc)
            raise
        try:
            held = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
            )
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
