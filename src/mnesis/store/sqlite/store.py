"""SQLite backend: one file, WAL, safe for several processes.

All work on a connection runs in one dedicated thread, so each public method
costs a single hop off the event loop however many statements it runs. A
turn's small write (an append, tool results) skips even that hop when it can:
if the connection is idle and the file's write lock is free at once, it runs
right on the event loop (a few hundred microseconds, the same transaction);
otherwise it queues on the thread, which waits for the lock. Checkpoints of
the write-ahead log run on a thread and connection of their own, never inside
a write. Writes
use ``BEGIN IMMEDIATE`` so two processes serialise on the write lock (waiting
up to ``connection_timeout``) instead of failing halfway through a
transaction. A read runs in one deferred transaction, so all its statements see
one snapshot of the file. Every statement is parameterised; no SQL is built
from input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mnesis.errors import ConfigError, DatabaseNotFoundError, MnesisStoreError
from mnesis.store.owners import ProcessOwner, is_abandoned, this_process
from mnesis.store.sql.backend import SQLBackend
from mnesis.store.sql.statements import Steps, execute, one, rowcount
from mnesis.store.sqlite.dialect import (
    LogConnection,
    SQLiteDialect,
    begin_if_free,
    read_transaction,
    run,
    transaction,
)
from mnesis.store.sqlite.errors import translate_error
from mnesis.store.sqlite.migrate import migrate, refuse_newer_schema, refuse_pending
from mnesis.store.sqlite.mnesis040 import migrate_040_file
from mnesis.store.sqlite.probe import FileKind, connect_read_only, probe, writable

T = TypeVar("T")

_BUSY = object()  # another connection holds the file's write lock

logger = logging.getLogger("mnesis.store")


def prepare_private_file(path: Path) -> None:
    """Create the folder (0700) and the database file (0600) before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class LogCheckpointer:
    """Checkpoints a file's write-ahead log from its own connection and thread.

    A passive checkpoint runs beside readers and writers, so no turn waits for
    it (nor for its fsync); one runs at a time, and a request while one runs
    is dropped (the next one covers it).
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._running: Future[None] | None = None

    def request(self) -> None:
        if self._running is not None and not self._running.done():
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mnesis-checkpoint")
        self._running = self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next request tries again
            logger.debug("checkpoint of %s skipped: %s", self._path, exc)

    def close(self) -> None:
        """Wait for a running checkpoint; release the connection and thread."""
        if self._executor is None:
            return
        self._executor.shutdown(wait=True)
        self._executor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SQLiteStore(SQLBackend):
    """The SQLite implementation of :class:`mnesis.store.base.Store`."""

    CHECKPOINT_EVERY = 200  # commits of ours between two checkpoints of the log
    LEASE_SECONDS = 60.0  # a lease whose heartbeat is older is abandoned
    HEARTBEAT_SECONDS = 10.0  # how often a held lease is renewed
    dialect = SQLiteDialect()

    def __init__(
        self,
        path: str | Path,
        *,
        wal_mode: bool = True,
        timeout: float = 30.0,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        if "\0" in self.path:
            raise ConfigError(f"database path {self.path!r} contains a NUL character")
        self.url = f"sqlite:///{self.path}"
        # Set by open() when asked, or when the file or its folder is not writable.
        self.read_only = False
        self._only_read = read_only
        self._wal = wal_mode
        self._timeout = timeout
        self._create = create
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnesis-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Held by whoever uses the connection: the thread, or a write on the loop.
        self._conn_lock = threading.Lock()
        # Work submitted to the thread and not yet finished: while there is
        # any, writes queue behind it rather than overtake it on the loop.
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._commits = 0  # since the last checkpoint
        self._checkpointer = LogCheckpointer(self.path, timeout)

    async def open(self) -> SQLiteStore:
        """Open the file, set pragmas and run pending migrations.

        The file is recognised read-only first: another application's database
        is refused untouched (``ForeignDatabaseError``); one of mnesis 0.4.0 is
        migrated in place, once, after a backup copy beside it; with ``create=False`` a
        missing one is refused (``DatabaseNotFoundError``) instead of created; a
        file without write access is opened read-only, as it is.
        """
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise
        return self

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            file = Path(self.path)
            kind = probe(file, self._timeout)  # before anything writes to the file
            if self._only_read:
                self._open_asked_read_only(file, kind)
                return
            if kind is FileKind.MNESIS_040:
                self._migrate_040(file)
            elif kind is not FileKind.MNESIS and not self._create:
                raise DatabaseNotFoundError(self.path, empty=kind is FileKind.EMPTY)
            if kind is FileKind.MISSING:
                try:
                    prepare_private_file(file)
                except OSError as exc:
                    raise MnesisStoreError(
                        f"cannot create database file {self.path}: {exc.strerror or exc}"
                    ) from exc
            if not writable(file):
                self._open_read_only(file)
                return
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=LogConnection,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            refuse_newer_schema(conn, self.path)  # before anything writes to the file
            if self._wal:
                self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Our commits never checkpoint inside a write: a LogCheckpointer does
            # it every CHECKPOINT_EVERY commits (other processes keep SQLite's default).
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn = conn
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _migrate_040(self, file: Path) -> None:
        """Migrate a mnesis 0.4.0 file in place, once (:mod:`.mnesis040`)."""
        report = migrate_040_file(file, self._timeout)
        if report.migrated:
            logger.warning(
                "migrated the mnesis 0.4.0 database %s (%d sessions); the original is kept as %s",
                self.path,
                report.sessions,
                report.backup,
            )

    def _open_asked_read_only(self, file: Path, kind: FileKind) -> None:
        """``read_only=True``: read the file as it is, whatever its permissions."""
        if kind in (FileKind.MISSING, FileKind.EMPTY):
            raise DatabaseNotFoundError(self.path, empty=kind is FileKind.EMPTY)
        if kind is FileKind.MNESIS_040:
            raise MnesisStoreError(
                f"{self.path} is a mnesis 0.4.0 database; opening it read-only cannot migrate "
                f"it: run `mnesis migrate {self.path}` first"
            )
        self._open_read_only(file)

    def _open_read_only(self, file: Path) -> None:
        """Read a file without write access as it is: no WAL switch, no migration."""
        conn = connect_read_only(file, self._timeout)
        try:
            refuse_pending(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.read_only = True

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
            return await loop.run_in_executor(self._executor, self._on_thread(), fn, *args)
        except Exception as exc:
            self._raise_translated(exc)

    def _on_thread(self) -> Callable[..., Any]:
        """Count work for the thread as queued until it has run; what runs it."""
        with self._queued_lock:
            self._queued += 1
        return self._locked

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            with self._conn_lock:
                return fn(*args)
        finally:
            with self._queued_lock:
                self._queued -= 1

    def _raise_translated(self, exc: Exception) -> NoReturn:
        error = translate_error(exc, self.path)
        if error is None:
            raise exc
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
            outcome = run(conn, steps)
        self._committed()
        return outcome

    async def _write_turn(self, steps: Steps[T]) -> T:
        """On the event loop when the connection is idle and the write lock free
        at once; otherwise on the thread (which waits for the lock)."""
        # A store call stays a point where other tasks get their turn, as the
        # hop to the thread was: without it, sessions whose model answers at
        # once (a mock, a cache) would run turn after turn alone.
        await asyncio.sleep(0)
        if not self._closed and self._conn is not None and not self.read_only and not self._queued:
            if self._conn_lock.acquire(blocking=False):
                try:
                    outcome = self._write_now(self._conn, steps)
                except Exception as exc:
                    self._raise_translated(exc)
                finally:
                    self._conn_lock.release()
                if outcome is not _BUSY:
                    return outcome  # type: ignore[return-value]
        return await self._write(steps)

    def _write_now(self, conn: sqlite3.Connection, steps: Steps[T]) -> T | object:
        """``steps`` in a transaction begun without waiting; ``_BUSY`` (and
        ``steps`` not started) if another connection holds the write lock."""
        if not begin_if_free(conn, self._timeout):
            return _BUSY
        with transaction(conn, begun=True):
            outcome = run(conn, steps)
        self._committed()
        return outcome

    def _committed(self) -> None:
        """Count a commit; every CHECKPOINT_EVERY, have the log checkpointed."""
        self._commits += 1
        if self._commits >= self.CHECKPOINT_EVERY and self._wal and not self._closed:
            self._commits = 0
            self._checkpointer.request()

    async def _read(self, steps: Steps[T]) -> T:
        return await self._run(self._read_sync, steps)

    def _read_sync(self, steps: Steps[T]) -> T:
        conn = self._db()
        with read_transaction(conn):
            return run(conn, steps)

    def _read_blocking(self, steps: Steps[T]) -> T:
        """A read queued on the thread like any other, its caller waiting for it."""
        if self._closed:
            raise MnesisStoreError(f"store {self.path} is closed")
        try:
            outcome: T = self._executor.submit(self._on_thread(), self._read_sync, steps).result()
        except Exception as exc:
            self._raise_translated(exc)
        return outcome

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
        self._checkpointer.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        """A lease row naming its holder's process, renewed by a heartbeat while held.

        A holder that died on this host (SIGKILL, power cut of a container) loses
        the lease at once; one on another host loses it when its heartbeat is
        older than ``LEASE_SECONDS``.
        """
        owner = this_process()
        holder = f"{owner.pid}:{secrets.token_hex(8)}"
        held = await self._write(_take_lease(session_id, holder, owner, self.LEASE_SECONDS))
        if not held:
            yield False
            return
        heartbeat = asyncio.get_running_loop().create_task(self._renew_lease(session_id, holder))
        try:
            yield True
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if not self._closed:
                await self._write(_give_back_lease(session_id, holder))

    async def _renew_lease(self, session_id: str, holder: str) -> None:
        """Push the lease's heartbeat and expiry forward until cancelled."""
        while True:
            await asyncio.sleep(self.HEARTBEAT_SECONDS)
            try:
                kept = await self._write(_renew_lease(session_id, holder, self.LEASE_SECONDS))
            except MnesisStoreError as exc:
                logger.warning("could not renew the compaction lease of %s: %s", session_id, exc)
                continue
            if not kept:
                logger.warning("the compaction lease of %s was taken over", session_id)
                return


def _take_lease(session_id: str, holder: str, owner: ProcessOwner, seconds: float) -> Steps[bool]:
    now = time.time()
    row = yield one(
        "SELECT expires_at, host, pid, started, heartbeat_at FROM compaction_leases "
        "WHERE session_id = ?",
        session_id,
    )
    if row is not None and not _lease_abandoned(row, now, seconds):
        return False
    yield execute(
        "INSERT OR REPLACE INTO compaction_leases "
        "(session_id, holder, expires_at, host, pid, started, heartbeat_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        session_id,
        holder,
        now + seconds,
        owner.host,
        owner.pid,
        owner.started,
        now,
    )
    return True


def _lease_abandoned(row: tuple[Any, ...], now: float, seconds: float) -> bool:
    expires_at, host, pid, started, heartbeat_at = row
    if expires_at <= now:
        return True
    if not host:  # written before leases named their holder: only the expiry tells
        return False
    return is_abandoned(ProcessOwner(host, int(pid), started), heartbeat_at, now, seconds)


def _renew_lease(session_id: str, holder: str, seconds: float) -> Steps[bool]:
    now = time.time()
    renewed = yield rowcount(
        "UPDATE compaction_leases SET heartbeat_at = ?, expires_at = ? "
        "WHERE session_id = ? AND holder = ?",
        now,
        now + seconds,
        session_id,
        holder,
    )
    return bool(renewed)


def _give_back_lease(session_id: str, holder: str) -> Steps[None]:
    yield execute(
        "DELETE FROM compaction_leases WHERE session_id = ? AND holder = ?", session_id, holder
    )
