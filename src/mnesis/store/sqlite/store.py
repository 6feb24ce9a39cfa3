"""SQLite backend: one file, WAL, safe for several processes.

All work on a connection runs in one dedicated thread, so each public method
costs a single hop off the event loop however many statements it runs. Writes
use ``BEGIN IMMEDIATE`` so two processes serialise on the write lock (waiting
up to ``connection_timeout``) instead of failing halfway through a
transaction. Every statement is parameterised; no SQL is built from input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mnesis.errors import MnesisStoreError
from mnesis.store.sql.backend import SQLBackend
from mnesis.store.sql.statements import Steps, execute, value
from mnesis.store.sqlite.dialect import SQLiteDialect, run, transaction
from mnesis.store.sqlite.errors import translate_error
from mnesis.store.sqlite.migrate import migrate, refuse_newer_schema

T = TypeVar("T")


def prepare_private_file(path: Path) -> None:
    """Create the folder (0700) and the database file (0600) before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class SQLiteStore(SQLBackend):
    """The SQLite implementation of :class:`mnesis.store.base.Store`."""

    LEASE_SECONDS = 900.0
    dialect = SQLiteDialect()

    def __init__(self, path: str | Path, *, wal_mode: bool = True, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        self._wal = wal_mode
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnesis-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    async def open(self) -> SQLiteStore:
        """Open the file, set pragmas and run pending migrations."""
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise
        return self

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            prepare_private_file(Path(self.path))
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            refuse_newer_schema(conn, self.path)  # before anything writes to the file
            if self._wal:
                self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn = conn
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs a moment of exclusive access; when
        # several processes open it at once, SQLite can report "locked" without
        # consulting the busy timeout, so wait and retry within that timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the writer thread; driver errors translated."""
        if self._closed:
            raise MnesisStoreError(f"store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            error = translate_error(exc, self.path)
            if error is None:
                raise
            raise error from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise MnesisStoreError(f"store {self.path} is not open")
        return self._conn

    async def _write(self, steps: Steps[T]) -> T:
        return await self._run(self._write_sync, steps)

    def _write_sync(self, steps: Steps[T]) -> T:
        conn = self._db()
        with transaction(conn):
            return run(conn, steps)

    async def _read(self, steps: Steps[T]) -> T:
        return await self._run(lambda: run(self._db(), steps))

    def serves_running_loop(self) -> bool:
        return True  # the writer thread serves any event loop

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        """A lease row with an expiry, so a crashed holder cannot keep it forever."""
        holder = f"{os.getpid()}:{secrets.token_hex(8)}"
        held = await self._write(_take_lease(session_id, holder, self.LEASE_SECONDS))
        try:
            yield held
        finally:
            if held and not self._closed:
                await self._write(_give_back_lease(session_id, holder))


def _take_lease(session_id: str, holder: str, seconds: float) -> Steps[bool]:
    now = time.time()
    expires = yield value(
        "SELECT expires_at FROM compaction_leases WHERE session_id = ?", session_id
    )
    if expires is not None and expires > now:
        return False
    yield execute(
        "INSERT OR REPLACE INTO compaction_leases (session_id, holder, expires_at) "
        "VALUES (?, ?, ?)",
        session_id,
        holder,
        now + seconds,
    )
    return True


def _give_back_lease(session_id: str, holder: str) -> Steps[None]:
    yield execute(
        "DELETE FROM compaction_leases WHERE session_id = ? AND holder = ?", session_id, holder
    )
