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
import json
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mnesis.errors import (
    InvalidInputError,
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
    ToolPart,
    part_to_json,
)
from mnesis.models.results import TurnSnapshot
from mnesis.store import _sqlite_dag as _dag
from mnesis.store import _sqlite_recall as _recall
from mnesis.store.base import (
    AppendOutcome,
    ContextEntry,
    NewMessage,
    NewSummary,
    SessionRecord,
    SummaryRecord,
    ToolResult,
    searchable_text,
)
from mnesis.store.invariants import SessionRows, check_session
from mnesis.store.migrations import load_migrations
from mnesis.store.rows import (
    INSERT_MESSAGE_COLUMNS,
    MESSAGE_COLUMNS,
    PART_COLUMNS,
    SESSION_COLUMNS,
    SUMMARY_COLUMNS,
    context_entries_from_rows,
    group_messages,
    message_params,
    session_from_row,
    session_info_from_row,
    summary_from_row,
)

T = TypeVar("T")


def _translate(exc: sqlite3.Error, path: str) -> MnesisStoreError:
    """Map a sqlite3 error to a mnesis error that says what to do about it."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConstraintError(f"rejected by the schema of {path}: {text}")
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return MnesisStoreError(f"database {path} stayed locked past the timeout: {text}")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return MnesisStoreError(f"{path} is not a readable mnesis database: {text}")
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
        return MnesisStoreError(f"cannot open database file {path}: {text}")
    return MnesisStoreError(f"SQLite error on {path}: {text}")


def _split_statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement and not all(
                ln.strip().startswith("--") or not ln.strip() for ln in statement.splitlines()
            ):
                yield statement
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise RuntimeError(f"incomplete SQL statement in migration: {buffer[:80]!r}")


def prepare_private_file(path: Path) -> None:
    """Create the folder (0700) and the database file (0600) before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class SQLiteStore:
    """The SQLite implementation of :class:`mnesis.store.base.Store`."""

    def __init__(self, path: str | Path, *, wal_mode: bool = True, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        self._wal = wal_mode
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnesis-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- plumbing ---------------------------------------------------------------

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
            self._refuse_newer_schema(conn)  # before anything writes to the file
            if self._wal:
                self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn = conn
            self._migrate(conn)
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

    def _refuse_newer_schema(self, conn: sqlite3.Connection) -> None:
        latest = load_migrations("sqlite")[-1].version
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if not exists:
            return
        (current,) = conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ).fetchone()
        if current > latest:
            raise SchemaVersionError(
                f"database {self.path} has schema version {current}, newer than this "
                f"mnesis understands ({latest}); upgrade mnesis"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        migrations = load_migrations("sqlite")
        latest = migrations[-1].version
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in migrations:
            with self._transaction(conn):
                (current,) = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                ).fetchone()
                if current > latest:
                    raise SchemaVersionError(
                        f"database {self.path} has schema version {current}, newer than this "
                        f"mnesis understands ({latest}); upgrade mnesis"
                    )
                if current >= migration.version:
                    continue
                for statement in _split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
        with self._transaction(conn):
            (current,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            if current > latest:
                raise SchemaVersionError(
                    f"database {self.path} has schema version {current}, newer than this "
                    f"mnesis understands ({latest}); upgrade mnesis"
                )

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise MnesisStoreError(f"store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                "text contains characters that cannot be stored as UTF-8 (a lone surrogate, "
                f"as os.fsdecode() makes from undecodable file names): {exc}"
            ) from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise MnesisStoreError(f"store {self.path} is not open")
        return self._conn

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

    # -- sessions ---------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        await self._run(self._create_session_sync, record)

    def _create_session_sync(self, r: SessionRecord) -> None:
        conn = self._db()
        with self._transaction(conn):
            if (
                r.parent_id is not None
                and not conn.execute(
                    "SELECT 1 FROM sessions WHERE id = ?", (r.parent_id,)
                ).fetchone()
            ):
                raise SessionNotFoundError(r.parent_id)
            conn.execute(
                "INSERT INTO sessions (id, parent_id, agent, model, system_prompt, config_json, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.id,
                    r.parent_id,
                    r.agent,
                    r.model,
                    r.system_prompt,
                    r.config_json,
                    r.created_at,
                    r.created_at,
                ),
            )

    async def get_session(self, session_id: str) -> SessionRecord:
        return await self._run(self._get_session_sync, session_id)

    def _get_session_sync(self, session_id: str) -> SessionRecord:
        row = (
            self._db()
            .execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))  # noqa: S608
            .fetchone()
        )
        if row is None:
            raise SessionNotFoundError(session_id)
        return session_from_row(row)

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
        return await self._run(self._append_sync, session_id, messages, usage, cost, snapshot)

    def _append_sync(
        self,
        session_id: str,
        messages: tuple[NewMessage, ...],
        usage: TokenUsage | None,
        cost: float,
        snapshot: TurnSnapshot | None,
    ) -> AppendOutcome:
        conn = self._db()
        now = time.time()
        with self._transaction(conn):
            row = conn.execute(
                "SELECT context_version FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            version_before = row[0]
            (seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?", (session_id,)
            ).fetchone()
            (position,) = conn.execute(
                "SELECT COALESCE(MAX(position), 0) FROM context_items WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            seqs: list[int] = []
            joined = 0
            for msg in messages:
                seq += 1
                seqs.append(seq)
                self._insert_message(conn, session_id, seq, msg)
                if msg.status == "complete":
                    position += 1
                    joined += 1
                    conn.execute(
                        "INSERT INTO context_items (session_id, position, kind, ref_id) "
                        "VALUES (?, ?, 'message', ?)",
                        (session_id, position, msg.id),
                    )
            u = usage or TokenUsage()
            turn_inc = 1 if snapshot is not None else 0
            conn.execute(
                "UPDATE sessions SET updated_at = ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?, "
                "cache_write_tokens = cache_write_tokens + ?, total_tokens = total_tokens + ?, "
                "cost = cost + ?, turn_count = turn_count + ?, "
                "context_version = context_version + ? WHERE id = ?",
                (
                    now,
                    u.input,
                    u.output,
                    u.cache_read,
                    u.cache_write,
                    u.effective_total() if usage is not None else 0,
                    cost,
                    turn_inc,
                    1 if joined else 0,
                    session_id,
                ),
            )
            if snapshot is not None:
                conn.execute(
                    "INSERT INTO turns (session_id, turn_index, snapshot_json, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, snapshot.turn_index, snapshot.model_dump_json(), now),
                )
        return AppendOutcome(tuple(seqs), version_before, version_before + (1 if joined else 0))

    @staticmethod
    def _insert_message(
        conn: sqlite3.Connection, session_id: str, seq: int, msg: NewMessage
    ) -> None:
        conn.execute(
            f"INSERT INTO messages ({INSERT_MESSAGE_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            message_params(session_id, seq, msg),
        )
        rows = []
        for idx, new in enumerate(msg.parts):
            part = new.part
            is_tool = isinstance(part, ToolPart)
            call = (
                part.model_copy(update={"output": None, "error_message": None})
                if (isinstance(part, ToolPart))
                else part
            )
            rows.append(
                (
                    msg.id,
                    session_id,
                    idx,
                    part.type,
                    part_to_json(call),
                    new.token_count,
                    part.tool_call_id if isinstance(part, ToolPart) else None,
                    str(part.status) if isinstance(part, ToolPart) else None,
                    part.output if isinstance(part, ToolPart) else None,
                    part.error_message if isinstance(part, ToolPart) else None,
                    new.result_token_count,
                    msg.created_at if is_tool and part.has_result else None,  # type: ignore[union-attr]
                )
            )
        for row, new in zip(rows, msg.parts, strict=True):
            cursor = conn.execute(
                "INSERT INTO parts (message_id, session_id, idx, type, data, token_count, "
                "tool_call_id, tool_status, tool_output, tool_error, result_token_count, "
                "completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            part_id = int(cursor.lastrowid or 0)
            index = [(part_id * 2, session_id, searchable_text(new.part))]
            if isinstance(new.part, ToolPart) and new.part.has_result:
                result = new.part.output if new.part.output is not None else new.part.error_message
                index.append((part_id * 2 + 1, session_id, result or ""))
            conn.executemany("INSERT INTO search_index (rowid, sid, body) VALUES (?, ?, ?)", index)

    async def fill_tool_results(
        self, session_id: str, results: tuple[ToolResult, ...]
    ) -> AppendOutcome:
        return await self._run(self._fill_sync, session_id, results)

    def _fill_sync(self, session_id: str, results: tuple[ToolResult, ...]) -> AppendOutcome:
        if not results:
            raise ToolResultError("no tool results given")
        for result in results:
            if result.output is None and result.error is None:
                raise ToolResultError(f"tool call {result.tool_call_id!r}: no output and no error")
        conn = self._db()
        now = time.time()
        message_ids: list[str] = []
        with self._transaction(conn):
            row = conn.execute(
                "SELECT context_version FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            version_before = row[0]
            for result in results:
                row = conn.execute(
                    "SELECT id, message_id, tool_status, "
                    "tool_output IS NOT NULL OR tool_error IS NOT NULL FROM parts "
                    "WHERE session_id = ? AND tool_call_id = ? ORDER BY id DESC LIMIT 1",
                    (session_id, result.tool_call_id),
                ).fetchone()
                if row is None:
                    raise ToolResultError(
                        f"no tool call with id {result.tool_call_id!r} in session {session_id}"
                    )
                if row[2] in ("completed", "error") or row[3]:
                    raise ToolResultError(f"tool call {result.tool_call_id!r} already has a result")
                status = "error" if result.error is not None else "completed"
                conn.execute(
                    "UPDATE parts SET tool_status = ?, tool_output = ?, tool_error = ?, "
                    "result_token_count = ?, completed_at = ? WHERE id = ?",
                    (status, result.output, result.error, result.token_count, now, row[0]),
                )
                conn.execute(
                    "INSERT INTO search_index (rowid, sid, body) VALUES (?, ?, ?)",
                    (
                        row[0] * 2 + 1,
                        session_id,
                        result.output if result.output is not None else result.error,
                    ),
                )
                conn.execute(
                    "UPDATE messages SET token_count = token_count + ? WHERE id = ?",
                    (result.token_count, row[1]),
                )
                if row[1] not in message_ids:
                    message_ids.append(row[1])
            conn.execute(
                "UPDATE sessions SET context_version = context_version + 1, updated_at = ? "
                "WHERE id = ?",
                (now, session_id),
            )
        return AppendOutcome((), version_before, version_before + 1, tuple(message_ids))

    # -- the summary DAG, tombstones, pins -------------------------------------

    async def commit_summary(self, session_id: str, summary: NewSummary) -> AppendOutcome:
        return await self._run(self._write_versioned, _dag.commit_summary, session_id, summary)

    async def prune_tool_outputs(
        self, session_id: str, tool_call_ids: tuple[str, ...]
    ) -> AppendOutcome:
        return await self._run(
            self._write_versioned, _dag.prune_tool_outputs, session_id, tool_call_ids
        )

    async def pin(self, session_id: str, message_id: str) -> AppendOutcome:
        return await self._run(self._write_versioned, _dag.pin, session_id, message_id)

    def _write_versioned(
        self, fn: Callable[..., tuple[int, int]], session_id: str, arg: Any
    ) -> AppendOutcome:
        conn = self._db()
        with self._transaction(conn):
            before, after = fn(conn, session_id, arg)
        return AppendOutcome((), before, after)

    async def get_summary(self, summary_id: str) -> SummaryRecord:
        return await self._run(self._get_summary_sync, summary_id)

    def _get_summary_sync(self, summary_id: str) -> SummaryRecord:
        row = (
            self._db()
            .execute(f"SELECT {SUMMARY_COLUMNS} FROM summaries s WHERE s.id = ?", (summary_id,))  # noqa: S608
            .fetchone()
        )
        if row is None:
            raise KeyError(f"no summary with id {summary_id!r}")
        return summary_from_row(row)

    async def summary_sources(self, summary_id: str) -> list[tuple[str, str]]:
        return await self._run(self._summary_sources_sync, summary_id)

    def _summary_sources_sync(self, summary_id: str) -> list[tuple[str, str]]:
        self._get_summary_sync(summary_id)
        rows = self._db().execute(
            "SELECT source_kind, source_id FROM summary_sources WHERE summary_id = ? ORDER BY ord",
            (summary_id,),
        )
        return [(r[0], r[1]) for r in rows]

    # -- recall -----------------------------------------------------------------

    async def search(
        self, session_id: str, terms: tuple[str, ...], *, after: int = 0, limit: int = 200
    ) -> list[tuple[int, str]]:
        return await self._run(lambda: _recall.search(self._db(), session_id, terms, after, limit))

    async def scan_messages(
        self, session_id: str, *, after_seq: int = 0, limit: int = 200
    ) -> list[MessageWithParts]:
        return await self._run(self._scan_sync, session_id, after_seq, limit)

    def _scan_sync(self, session_id: str, after_seq: int, limit: int) -> list[MessageWithParts]:
        rows = (
            self._db()
            .execute(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM "  # noqa: S608
                "(SELECT * FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?) m "
                "LEFT JOIN parts p ON p.message_id = m.id ORDER BY m.seq, p.idx",
                (session_id, after_seq, limit),
            )
            .fetchall()
        )
        return self._group(rows)

    async def get_messages_by_id(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> list[MessageWithParts]:
        return await self._run(self._by_id_sync, session_id, message_ids)

    def _by_id_sync(self, session_id: str, message_ids: tuple[str, ...]) -> list[MessageWithParts]:
        out: list[MessageWithParts] = []
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = (
                self._db()
                .execute(
                    f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
                    "LEFT JOIN parts p ON p.message_id = m.id "
                    # '+' keeps the planner on the primary key, not the session's whole range
                    f"WHERE +m.session_id = ? AND m.id IN ({marks}) ORDER BY m.seq, p.idx",
                    (session_id, *chunk),
                )
                .fetchall()
            )
            out += self._group(rows)
        return sorted(out, key=lambda m: m.message.seq)

    async def covering_summaries(
        self, session_id: str, message_ids: tuple[str, ...]
    ) -> dict[str, str]:
        return await self._run(
            lambda: _recall.covering_summaries(self._db(), session_id, message_ids)
        )

    async def summary_message_ids(self, summary_id: str) -> list[str]:
        def run() -> list[str]:
            self._get_summary_sync(summary_id)
            return _recall.summary_message_ids(self._db(), summary_id)

        return await self._run(run)

    async def parent_of(self, node_id: str) -> str | None:
        return await self._run(lambda: _recall.parent_of(self._db(), node_id))

    async def is_pinned(self, session_id: str, message_id: str) -> bool:
        return await self._run(
            lambda: (
                self._db()
                .execute(
                    "SELECT 1 FROM pins WHERE session_id = ? AND message_id = ?",
                    (session_id, message_id),
                )
                .fetchone()
                is not None
            )
        )

    async def list_sessions(self, session_id: str | None = None) -> list[SessionInfo]:
        return await self._run(self._list_sessions_sync, session_id)

    def _list_sessions_sync(self, session_id: str | None) -> list[SessionInfo]:
        select = (
            f"SELECT {SESSION_COLUMNS}, "  # noqa: S608
            "(SELECT COUNT(*) FROM messages m WHERE m.session_id = sessions.id), "
            "(SELECT COUNT(*) FROM summaries s WHERE s.session_id = sessions.id) FROM sessions "
        )
        if session_id is None:
            rows = self._db().execute(select + "ORDER BY created_at DESC").fetchall()
        else:
            rows = self._db().execute(select + "WHERE id = ?", (session_id,)).fetchall()
            if not rows:
                raise SessionNotFoundError(session_id)
        return [session_info_from_row(row) for row in rows]

    async def get_file_ref(self, content_id: str) -> FileRefPart | None:
        row = await self._run(
            lambda: (
                self._db()
                .execute(
                    "SELECT content_id, path, file_type, token_count, exploration_summary "
                    "FROM file_refs WHERE content_id = ?",
                    (content_id,),
                )
                .fetchone()
            )
        )
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
        def write() -> None:
            conn = self._db()
            with self._transaction(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO file_refs (content_id, path, file_type, token_count, "
                    "size_bytes, exploration_summary, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        part.content_id,
                        part.path,
                        part.file_type,
                        part.token_count,
                        size_bytes,
                        part.exploration_summary,
                        time.time(),
                    ),
                )

        await self._run(write)

    # -- compaction lease ---------------------------------------------------------

    LEASE_SECONDS = 900.0

    @contextlib.asynccontextmanager
    async def compaction_lock(self, session_id: str) -> AsyncIterator[bool]:
        holder = f"{os.getpid()}:{secrets.token_hex(8)}"

        def take() -> bool:
            conn = self._db()
            now = time.time()
            with self._transaction(conn):
                row = conn.execute(
                    "SELECT expires_at FROM compaction_leases WHERE session_id = ?",
                    (session_id,),
                ).fetchone()
                if row is not None and row[0] > now:
                    return False
                conn.execute(
                    "INSERT OR REPLACE INTO compaction_leases (session_id, holder, expires_at) "
                    "VALUES (?, ?, ?)",
                    (session_id, holder, now + self.LEASE_SECONDS),
                )
                return True

        def give_back() -> None:
            conn = self._db()
            with self._transaction(conn):
                conn.execute(
                    "DELETE FROM compaction_leases WHERE session_id = ? AND holder = ?",
                    (session_id, holder),
                )

        held = await self._run(take)
        try:
            yield held
        finally:
            if held and not self._closed:
                await self._run(give_back)

    # -- operator runs -----------------------------------------------------------

    async def start_map_run(self, run_id: str, operator: str, fingerprint: str) -> dict[int, str]:
        def start() -> dict[int, str]:
            conn = self._db()
            with self._transaction(conn):
                row = conn.execute(
                    "SELECT operator, fingerprint FROM map_runs WHERE id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO map_runs (id, operator, fingerprint, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (run_id, operator, fingerprint, time.time()),
                    )
                    return {}
                if tuple(row) != (operator, fingerprint):
                    raise InvalidInputError(
                        f"run {run_id!r} exists for different work (another operator, "
                        "template, schema, model or inputs); pick a new run_id"
                    )
                return {
                    int(r[0]): str(r[1])
                    for r in conn.execute(
                        "SELECT idx, status FROM map_items WHERE run_id = ?", (run_id,)
                    )
                }

        return await self._run(start)

    async def set_map_item(
        self, run_id: str, index: int, status: str, result_json: str | None = None
    ) -> None:
        def write() -> None:
            conn = self._db()
            with self._transaction(conn):
                conn.execute(
                    "INSERT INTO map_items (run_id, idx, status, result_json, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, idx) DO UPDATE SET "
                    "status = excluded.status, result_json = excluded.result_json, "
                    "updated_at = excluded.updated_at",
                    (run_id, index, status, result_json, time.time()),
                )

        await self._run(write)

    async def map_results(self, run_id: str) -> list[tuple[int, str, str | None]]:
        rows = await self._run(
            lambda: (
                self._db()
                .execute(
                    "SELECT idx, status, result_json FROM map_items WHERE run_id = ? ORDER BY idx",
                    (run_id,),
                )
                .fetchall()
            )
        )
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    # -- reads ------------------------------------------------------------------

    async def get_messages(self, session_id: str) -> list[MessageWithParts]:
        return await self._run(self._get_messages_sync, session_id)

    def _get_messages_sync(self, session_id: str) -> list[MessageWithParts]:
        conn = self._db()
        if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            raise SessionNotFoundError(session_id)
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
            "LEFT JOIN parts p ON p.message_id = m.id "
            "WHERE m.session_id = ? ORDER BY m.seq, p.idx",
            (session_id,),
        ).fetchall()
        return self._group(rows)

    @staticmethod
    def _group(rows: list[tuple[Any, ...]]) -> list[MessageWithParts]:
        return group_messages(rows)

    async def get_message(self, message_id: str) -> MessageWithParts:
        return await self._run(self._get_message_sync, message_id)

    def _get_message_sync(self, message_id: str) -> MessageWithParts:
        rows = (
            self._db()
            .execute(
                f"SELECT {MESSAGE_COLUMNS}, {PART_COLUMNS} FROM messages m "  # noqa: S608
                "LEFT JOIN parts p ON p.message_id = m.id WHERE m.id = ? ORDER BY p.idx",
                (message_id,),
            )
            .fetchall()
        )
        if not rows:
            raise KeyError(f"no message with id {message_id!r}")
        return self._group(rows)[0]

    async def context_entries(self, session_id: str) -> tuple[int, list[ContextEntry]]:
        return await self._run(self._context_entries_sync, session_id)

    def _context_entries_sync(self, session_id: str) -> tuple[int, list[ContextEntry]]:
        conn = self._db()
        row = conn.execute(
            "SELECT context_version FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFoundError(session_id)
        pinned = {
            r[0]
            for r in conn.execute("SELECT message_id FROM pins WHERE session_id = ?", (session_id,))
        }
        summaries = {
            r.id: r
            for r in (
                summary_from_row(x)
                for x in conn.execute(
                    f"SELECT {SUMMARY_COLUMNS} FROM context_items ci "  # noqa: S608
                    "JOIN summaries s ON s.id = ci.ref_id "
                    "WHERE ci.session_id = ? AND ci.kind = 'summary'",
                    (session_id,),
                )
            )
        }
        rows = conn.execute(
            f"SELECT ci.position, ci.kind, ci.ref_id, m.role, m.seq, {PART_COLUMNS} "  # noqa: S608
            "FROM context_items ci "
            "LEFT JOIN messages m ON m.id = ci.ref_id AND ci.kind = 'message' "
            "LEFT JOIN parts p ON p.message_id = m.id "
            "WHERE ci.session_id = ? ORDER BY ci.position, p.idx",
            (session_id,),
        ).fetchall()
        return row[0], context_entries_from_rows(rows, summaries, pinned)

    async def snapshots(self, session_id: str) -> list[TurnSnapshot]:
        return await self._run(self._snapshots_sync, session_id)

    def _snapshots_sync(self, session_id: str) -> list[TurnSnapshot]:
        self._get_session_sync(session_id)
        rows = (
            self._db()
            .execute(
                "SELECT snapshot_json FROM turns WHERE session_id = ? ORDER BY turn_index",
                (session_id,),
            )
            .fetchall()
        )
        return [TurnSnapshot.model_validate_json(r[0]) for r in rows]

    # -- invariants -------------------------------------------------------------

    async def verify(self, session_id: str | None = None) -> list[str]:
        return await self._run(self._verify_sync, session_id)

    def _verify_sync(self, session_id: str | None) -> list[str]:
        conn = self._db()
        problems: list[str] = []
        if session_id is not None:
            self._get_session_sync(session_id)
            sessions = [session_id]
        else:
            sessions = [r[0] for r in conn.execute("SELECT id FROM sessions")]
        for sid in sessions:
            problems += check_session(self._session_rows(conn, sid))
        orphans = (
            conn.execute(
                "SELECT p.id FROM parts p LEFT JOIN messages m ON m.id = p.message_id "
                "WHERE m.id IS NULL AND p.session_id = ? LIMIT 10",
                (session_id,),
            )
            if session_id is not None
            else conn.execute(
                "SELECT p.id FROM parts p LEFT JOIN messages m ON m.id = p.message_id "
                "WHERE m.id IS NULL LIMIT 10"
            )
        )
        for (orphan,) in orphans:
            problems.append(f"part {orphan} belongs to no message")
        return problems

    @staticmethod
    def _session_rows(conn: sqlite3.Connection, sid: str) -> SessionRows:
        one = (sid,)
        mismatches = [
            f"message {mid} token count {stored} != parts {actual}"
            for mid, stored, actual in conn.execute(
                "SELECT m.id, m.token_count, "
                "COALESCE(SUM(p.token_count + p.result_token_count), 0) "
                "FROM messages m LEFT JOIN parts p ON p.message_id = m.id "
                "WHERE m.session_id = ? GROUP BY m.id",
                one,
            )
            if stored != actual
        ]
        sources: dict[str, list[tuple[str, str]]] = {}
        for summary_id, kind, source in conn.execute(
            "SELECT ss.summary_id, ss.source_kind, ss.source_id FROM summary_sources ss "
            "JOIN summaries s ON s.id = ss.summary_id WHERE s.session_id = ? "
            "ORDER BY ss.summary_id, ss.ord",
            one,
        ):
            sources.setdefault(summary_id, []).append((kind, source))
        (turns,) = conn.execute("SELECT COUNT(*) FROM turns WHERE session_id = ?", one).fetchone()
        (turn_count,) = conn.execute("SELECT turn_count FROM sessions WHERE id = ?", one).fetchone()
        return SessionRows(
            session_id=sid,
            messages=[
                (r[0], r[1], r[2])
                for r in conn.execute(
                    "SELECT id, seq, status FROM messages WHERE session_id = ? ORDER BY seq", one
                )
            ],
            context=[
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT kind, ref_id FROM context_items WHERE session_id = ? ORDER BY position",
                    one,
                )
            ],
            summaries={
                r[0]: (r[1], r[2], r[3], r[4])
                for r in conn.execute(
                    "SELECT id, kind, first_seq, last_seq, message_count FROM summaries "
                    "WHERE session_id = ?",
                    one,
                )
            },
            sources=sources,
            pins={
                r[0] for r in conn.execute("SELECT message_id FROM pins WHERE session_id = ?", one)
            },
            turn_count=turn_count,
            snapshots=turns,
            token_mismatches=mismatches,
        )

    # -- maintenance helpers used by tests and tools -------------------------

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return await self._run(
            lambda: self._db().execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        )


def config_json(data: dict[str, Any]) -> str:
    """Deterministic JSON used for stored configuration."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
