"""PostgreSQL backend: a connection pool, safe for many processes and hosts.

Every public write is one transaction that first locks the session's row
(``SELECT ... FOR UPDATE``), so appenders in any number of processes queue up
per session and never hand out the same sequence number or context position.
Reads run in a read-only, repeatable-read transaction: one consistent snapshot
however many statements they take. Migrations run once, under a transaction
advisory lock, so processes starting together do not race. Every statement is
parameterised; no SQL is built from input. Driver errors are translated into
mnesis errors in one place, :func:`_translate`, and never name the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mnesis.errors import (
    InvalidInputError,
    MnesisError,
    MnesisStoreError,
    SchemaVersionError,
    SessionNotFoundError,
    StoreConstraintError,
    ToolResultError,
)
from mnesis.models.info import SessionInfo
from mnesis.models.message import (
    FileRefPart,
    MessageWithParts,
    TokenUsage,
)
from mnesis.models.results import TurnSnapshot
from mnesis.store import _pg_log as _log
from mnesis.store import _pg_reads as _reads
from mnesis.store import _pg_sql as _sql
from mnesis.store.base import (
    AppendOutcome,
    ContextEntry,
    NewMessage,
    NewSummary,
    SessionRecord,
    SummaryRecord,
    ToolResult,
)
from mnesis.store.invariants import check_session
from mnesis.store.migrations import load_migrations
from mnesis.store.rows import (
    MESSAGE_COLUMNS,
    PART_COLUMNS,
    SESSION_COLUMNS,
    SUMMARY_COLUMNS,
    session_from_row,
    session_info_from_row,
    summary_from_row,
)

T = TypeVar("T")
_MIGRATION_LOCK = 0x6D6E6573  # "mnes": the advisory lock key for schema changes


def redact_url(url: str) -> str:
    """The URL without its password (what errors and ``store.url`` show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:
        raise MnesisStoreError(
            "PostgreSQL storage needs the asyncpg driver: pip install 'mnesis[postgres]'"
        ) from exc
    return asyncpg


def _is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the driver or the network (and needs translating)."""
    asyncpg = _import_asyncpg()
    return isinstance(
        exc,
        asyncpg.PostgresError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | OSError
        | TimeoutError
        | UnicodeEncodeError,
    )


def _translate(exc: BaseException, url: str) -> MnesisError:
    """Map an asyncpg (or socket) error to a mnesis error that says what to do about it."""
    asyncpg = _import_asyncpg()
    text = str(exc)
    if isinstance(exc, UnicodeEncodeError) or isinstance(exc.__cause__, UnicodeEncodeError):
        return InvalidInputError(
            "text contains characters that cannot be stored as UTF-8 (a lone surrogate, "
            f"as os.fsdecode() makes from undecodable file names): {text}"
        )
    if isinstance(
        exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        return InvalidInputError(f"text PostgreSQL cannot store (such as a NUL character): {text}")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return StoreConstraintError(f"rejected by the schema of {url}: {text}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return MnesisStoreError(f"database of {url} does not exist (create it first): {text}")
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return MnesisStoreError(f"PostgreSQL refused the login for {url}: {text}")
    if isinstance(exc, OSError | TimeoutError | asyncpg.ConnectionDoesNotExistError):
        return MnesisStoreError(f"cannot reach PostgreSQL at {url}: {text}")
    if isinstance(exc, asyncpg.DataError):
        return InvalidInputError(f"value PostgreSQL cannot store: {text}")
    return MnesisStoreError(f"PostgreSQL error on {url}: {text}")


class PostgresStore:
    """The PostgreSQL implementation of :class:`mnesis.store.base.Store`."""

    def __init__(
        self, dsn: str, *, timeout: float = 30.0, min_size: int = 1, max_size: int = 10
    ) -> None:
        self._dsn = dsn
        self.url = redact_url(dsn)
        self._timeout = timeout
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._closed = False
        self.loop: asyncio.AbstractEventLoop | None = None  # the pool works on this loop only

    # -- plumbing ---------------------------------------------------------------

    async def open(self) -> PostgresStore:
        """Connect, refuse a newer schema and run pending migrations."""
        asyncpg = _import_asyncpg()
        self.loop = asyncio.get_running_loop()
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                command_timeout=None,
            )
            async with self._pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException as exc:
            self._closed = True
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
            if _is_driver_error(exc):
                raise _translate(exc, self.url) from exc
            raise
        return self

    async def _migrate(self, conn: Any) -> None:
        migrations = load_migrations("postgres")
        latest = migrations[-1].version
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            current = 0
            if exists:
                current = await conn.fetchval(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                )
            if current > latest:  # before anything changes
                raise SchemaVersionError(
                    f"database {self.url} has schema version {current}, newer than this "
                    f"mnesis understands ({latest}); upgrade mnesis"
                )
            if current == latest:
                return
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            for migration in migrations:
                if migration.version <= current:
                    continue
                await conn.execute(migration.sql)  # a script: no parameters, several statements
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    time.time(),
                )

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction; driver errors translated."""
        if self._closed or self._pool is None:
            raise MnesisStoreError(f"store {self.url} is closed")
        try:
            async with self._pool.acquire() as conn:
                if write:
                    transaction = conn.transaction()
                else:
                    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                async with transaction:
                    yield conn
        except Exception as exc:
            if _is_driver_error(exc):
                raise _translate(exc, self.url) from exc
            raise

    async def _write(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self._connection(write=True) as conn:
            return await fn(conn, *args)

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self._connection(write=False) as conn:
            return await fn(conn, *args)

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        """A session-level advisory lock on its own connection, held for the pass."""
        if self._closed or self._pool is None:
            raise MnesisStoreError(f"store {self.url} is closed")
        key = "mnesis-compaction:" + session_id
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            if _is_driver_error(exc):
                raise _translate(exc, self.url) from exc
            raise
        try:
            held = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
            )
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
        finally:
            await self._pool.release(conn)

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
                if _is_driver_error(exc):
                    raise _translate(exc, self.url) from exc
                raise

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""

        async def run(conn: Any) -> int:
            return int(await conn.fetchval("SELECT MAX(version) FROM schema_migrations"))

        return await self._read(run)

    # -- sessions ---------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        async def run(conn: Any, r: SessionRecord) -> None:
            if r.parent_id is not None and not await conn.fetchval(
                "SELECT 1 FROM sessions WHERE id = $1", r.parent_id
            ):
                raise SessionNotFoundError(r.parent_id)
            await conn.execute(
                "INSERT INTO sessions (id, parent_id, agent, model, system_prompt, config_json, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                r.id,
                r.parent_id,
                r.agent,
                r.model,
                r.system_prompt,
                r.config_json,
                r.created_at,
                r.created_at,
            )

        await self._write(run, record)

    async def get_session(self, session_id: str) -> SessionRecord:
        return await self._read(self._get_session, session_id)

    @staticmethod
    async def _get_session(conn: Any, session_id: str) -> SessionRecord:
        row = await conn.fetchrow(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1",  # noqa: S608
            session_id,
        )
        if row is None:
            raise SessionNotFoundError(session_id)
        return session_from_row(tuple(row))

    # -- appends ----------------------------------------------------------------

    async def append(
        self,
        session_id: str,
        messages: tuple[NewMessage, ...],
        *,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        snapshot: TurnSnapshot | None = None,
    ) -> AppendOutcome:
        return await self._write(_log.append, session_id, messages, usage, cost, snapshot)

    async def fill_tool_results(
        self, session_id: str, results: tuple[ToolResult, ...]
    ) -> AppendOutcome:
        if not results:
            raise ToolResultError("no tool results given")
        for result in results:
            if result.output is None and result.error is None:
                raise ToolResultError(f"tool call {result.tool_call_id!r}: no output and no error")
        return await self._write(_log.fill, session_id, results)

    # -- the summary DAG, tombstones, pins -------------------------------------

    async def commit_summary(self, session_id: str, summary: NewSummary) -> AppendOutcome:
        before, after = await self._write(_sql.commit_summary, session_id, summary)
        return AppendOutcome((), before, after)

    async def prune_tool_outputs(
        self, session_id: str, tool_call_ids: tuple[str, ...]
    ) -> AppendOutcome:
        before, after = await self._write(_sql.prune_tool_outputs, session_id, tool_call_ids)
        return AppendOutcome((), before, after)

    async def pin(self, session_id: str, message_id: str) -> AppendOutcome:
        before, after = await self._write(_sql.pin, session_id, message_id)
        return AppendOutcome((), before, after)

    async def get_summary(self, summary_id: str) -> SummaryRecord:
        return await self._read(self._get_summary, summary_id)

    @staticmethod
    async def _get_summary(conn: Any, summary_id: str) -> SummaryRecord:
        row = await conn.fetchrow(
            f"SELECT {SUMMARY_COLUMNS} FROM summaries s WHERE s.id = $1",  # noqa: S608
            summary_id,
        )
        if row is None:
            raise KeyError(f"no summary with id {summary_id!r}")
        return summary_from_row(tuple(row))

    async def summary_sources(self, summary_id: str) -> list[tuple[str, str]]:
        async def run(conn: Any) -> list[tuple[str, str]]:
            await self._get_summary(conn, summary_id)
            rows = await conn.fetch(
                "SELECT source_kind, source_id FROM summary_sources WHERE summary_id = $1 "
                "ORDER BY ord",
                summary_id,
            )
            return [(r[0], r[1]) for r in rows]

        return await self._read(run)

    # -- recall -----------------------------------------------------------------

    async def search(
        self, session_id: str, terms: tuple[str, ...], *, after: int = 0, limit: int = 200
    ) -> list[tuple[int, str]]:
        return await self._read(_sql.search, session_id, terms, after, limit)

    async def scan_messages(
        self, session_id: str, *, after_seq: int = 0, limit: int = 200
    ) -> list[MessageWithParts]:
        async def run(conn: Any) -> list[MessageWithParts]:
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM "  # noqa: S608
                "(SELECT * FROM messages WHERE session_id = $1 AND seq > $2 "
                " ORDER BY seq LIMIT $3) m "
                "LEFT JOIN parts p ON p.message_id = m.id ORDER BY m.seq, p.idx",
                session_id,
                after_seq,
                limit,
            )
            return _reads.group(rows)

        return await self._read(run)

    async def get_messages_by_id(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> list[MessageWithParts]:
        async def run(conn: Any) -> list[MessageWithParts]:
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
                "LEFT JOIN parts p ON p.message_id = m.id "
                "WHERE m.session_id = $1 AND m.id = ANY($2::text[]) ORDER BY m.seq, p.idx",
                session_id,
                list(message_ids),
            )
            return _reads.group(rows)

        if not message_ids:
            return []
        return await self._read(run)

    async def covering_summaries(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> dict[str, str]:
        return await self._read(_sql.covering_summaries, message_ids)

    async def summary_message_ids(self, summary_id: str) -> list[str]:
        async def run(conn: Any) -> list[str]:
            await self._get_summary(conn, summary_id)
            return await _sql.summary_message_ids(conn, summary_id)

        return await self._read(run)

    async def parent_of(self, node_id: str) -> str | None:
        async def run(conn: Any) -> str | None:
            found = await conn.fetchval(
                "SELECT summary_id FROM summary_sources WHERE source_id = $1", node_id
            )
            return None if found is None else str(found)

        return await self._read(run)

    async def is_pinned(self, session_id: str, message_id: str) -> bool:
        async def run(conn: Any) -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pins WHERE session_id = $1 AND message_id = $2)",
                    session_id,
                    message_id,
                )
            )

        return await self._read(run)

    async def list_sessions(self, session_id: str | None = None) -> list[SessionInfo]:
        async def run(conn: Any) -> list[Any]:
            rows = await conn.fetch(
                f"SELECT {SESSION_COLUMNS}, "  # noqa: S608
                "(SELECT COUNT(*) FROM messages m WHERE m.session_id = sessions.id), "
                "(SELECT COUNT(*) FROM summaries s WHERE s.session_id = sessions.id) "
                "FROM sessions WHERE $1::text IS NULL OR id = $1 ORDER BY created_at DESC",
                session_id,
            )
            if session_id is not None and not rows:
                raise SessionNotFoundError(session_id)
            return list(rows)

        return [session_info_from_row(tuple(row)) for row in await self._read(run)]

    async def get_file_ref(self, content_id: str) -> FileRefPart | None:
        async def run(conn: Any) -> Any:
            return await conn.fetchrow(
                "SELECT content_id, path, file_type, token_count, exploration_summary "
                "FROM file_refs WHERE content_id = $1",
                content_id,
            )

        row = await self._read(run)
        if row is None:
            return None
        return FileRefPart(
            content_id=row[0],
            path=row[1],
            file_type=row[2],
            token_count=row[3],
            exploration_summary=row[4],
        )

    async def put_file_ref(self, part: FileRefPart, size_bytes: int) -> None:
        async def run(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO file_refs (content_id, path, file_type, token_count, size_bytes, "
                "exploration_summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (content_id) DO NOTHING",
                part.content_id,
                part.path,
                part.file_type,
                part.token_count,
                size_bytes,
                part.exploration_summary,
                time.time(),
            )

        await self._write(run)

    # -- operator runs -----------------------------------------------------------

    async def start_map_run(self, run_id: str, operator: str, fingerprint: str) -> dict[int, str]:
        async def run(conn: Any) -> dict[int, str]:
            await conn.execute(
                "INSERT INTO map_runs (id, operator, fingerprint, created_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                run_id,
                operator,
                fingerprint,
                time.time(),
            )
            row = await conn.fetchrow(
                "SELECT operator, fingerprint FROM map_runs WHERE id = $1 FOR UPDATE", run_id
            )
            if tuple(row) != (operator, fingerprint):
                raise InvalidInputError(
                    f"run {run_id!r} exists for different work (another operator, "
                    "template, schema, model or inputs); pick a new run_id"
                )
            rows = await conn.fetch("SELECT idx, status FROM map_items WHERE run_id = $1", run_id)
            return {int(r[0]): str(r[1]) for r in rows}

        return await self._write(run)

    async def set_map_item(
        self, run_id: str, index: int, status: str, result_json: str | None = None
    ) -> None:
        async def run(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO map_items (run_id, idx, status, result_json, updated_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, idx) DO UPDATE SET "
                "status = excluded.status, result_json = excluded.result_json, "
                "updated_at = excluded.updated_at",
                run_id,
                index,
                status,
                result_json,
                time.time(),
            )

        await self._write(run)

    async def map_results(self, run_id: str) -> list[tuple[int, str, str | None]]:
        async def run(conn: Any) -> list[tuple[int, str, str | None]]:
            rows = await conn.fetch(
                "SELECT idx, status, result_json FROM map_items WHERE run_id = $1 ORDER BY idx",
                run_id,
            )
            return [(int(r[0]), str(r[1]), r[2]) for r in rows]

        return await self._read(run)

    # -- reads ------------------------------------------------------------------

    async def get_messages(self, session_id: str) -> list[MessageWithParts]:
        async def run(conn: Any) -> list[MessageWithParts]:
            if not await conn.fetchval("SELECT 1 FROM sessions WHERE id = $1", session_id):
                raise SessionNotFoundError(session_id)
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
                "LEFT JOIN parts p ON p.message_id = m.id "
                "WHERE m.session_id = $1 ORDER BY m.seq, p.idx",
                session_id,
            )
            return _reads.group(rows)

        return await self._read(run)

    async def get_message(self, message_id: str) -> MessageWithParts:
        async def run(conn: Any) -> list[MessageWithParts]:
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
                "LEFT JOIN parts p ON p.message_id = m.id WHERE m.id = $1 ORDER BY p.idx",
                message_id,
            )
            return _reads.group(rows)

        found = await self._read(run)
        if not found:
            raise KeyError(f"no message with id {message_id!r}")
        return found[0]

    async def context_entries(self, session_id: str) -> tuple[int, list[ContextEntry]]:
        return await self._read(_reads.context_entries, session_id)

    async def snapshots(self, session_id: str) -> list[TurnSnapshot]:
        async def run(conn: Any) -> list[Any]:
            await self._get_session(conn, session_id)
            return list(
                await conn.fetch(
                    "SELECT snapshot_json FROM turns WHERE session_id = $1 ORDER BY turn_index",
                    session_id,
                )
            )

        return [TurnSnapshot.model_validate_json(r[0]) for r in await self._read(run)]

    # -- invariants -------------------------------------------------------------

    async def verify(self, session_id: str | None = None) -> list[str]:
        async def run(conn: Any) -> list[str]:
            if session_id is not None:
                await self._get_session(conn, session_id)
                sessions = [session_id]
            else:
                sessions = [r[0] for r in await conn.fetch("SELECT id FROM sessions ORDER BY id")]
            problems: list[str] = []
            for sid in sessions:
                problems += check_session(await _sql.session_rows(conn, sid))
            return problems + await _sql.orphan_parts(conn, session_id)

        return await self._read(run)
