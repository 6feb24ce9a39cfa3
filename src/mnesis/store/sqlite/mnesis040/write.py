"""Migrating a mnesis 0.4.0 file in place: a backup beside it, then one transaction.

The whole import holds the file's write lock: under it the file is checked to
be 0.4.0's still (another process may have migrated it meanwhile), copied byte
for byte beside itself (``sessions.db.0.4.0-backup``, never over an existing
file), then, in one transaction, 0.4.0's tables are renamed ``mnesis040_*``
and kept, our schema is built by our numbered migrations, every session is
planned (:mod:`.plan`) and written, and ``verify()`` must find nothing before
the commit. Any failure rolls it all back, so the file stays byte-identical,
and removes the backup it made; the error says why in one line.

A dry run migrates a private copy the same way and reports what it did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from mnesis.errors import (
    DatabaseNotFoundError,
    ForeignDatabaseError,
    LegacyMigrationError,
    MnesisStoreError,
)
from mnesis.store.sql.log import insert_message
from mnesis.store.sql.statements import Steps, execute, many
from mnesis.store.sql.verify import verify
from mnesis.store.sqlite.dialect import SQLiteDialect, run
from mnesis.store.sqlite.errors import translate_error
from mnesis.store.sqlite.migrate import create_schema_in_transaction
from mnesis.store.sqlite.mnesis040.plan import SessionPlan, plan_session
from mnesis.store.sqlite.mnesis040.read import (
    check_columns,
    read_file_refs,
    read_session,
    rename_tables,
    session_ids,
)
from mnesis.store.sqlite.mnesis040.report import LegacyMigrationReport
from mnesis.store.sqlite.probe import MNESIS_040_TABLES, FileKind, probe, writable
from mnesis.tokens import TokenEstimator

BACKUP_SUFFIX = ".0.4.0-backup"
_COPY_CHUNK = 1 << 20
# Our tables with foreign keys, checked before the commit (the import runs with
# enforcement off, as SQLite cannot switch it inside a transaction).
_OUR_TABLES = ("sessions", "messages", "parts", "context_items", "summaries", "pins", "turns")


def migrate_040_file(path: Path, timeout: float, *, backup: bool = True) -> LegacyMigrationReport:
    """Migrate the 0.4.0 file at ``path`` in place (see the module docstring).

    Returns a report with ``migrated=False`` when, once locked, the file turned
    out to be migrated already.
    """
    if not writable(path):
        raise LegacyMigrationError(
            f"{path} is a mnesis 0.4.0 database; migrating it needs write access to the file "
            "and its folder (for the backup); it was left untouched"
        )
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    made: list[Path] = []
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not _still_040(conn):
                conn.execute("ROLLBACK")
                return LegacyMigrationReport(str(path), migrated=False)
            if backup:
                made = copy_beside(path)
            report = _import(conn, str(path))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for file in made:
                file.unlink(missing_ok=True)
            if isinstance(exc, Exception):
                raise _one_line(exc, path) from exc
            raise
    finally:
        conn.close()
    return dataclasses.replace(report, backup=str(made[0]) if made else None)


def dry_run_040_file(path: Path, timeout: float) -> LegacyMigrationReport:
    """What migrating ``path`` would do, found by migrating a private copy of it.

    Only the file's bytes (and its write-ahead log's) are read, so the original,
    and its folder, stay exactly as they were, even on read-only media.
    """
    with tempfile.TemporaryDirectory(prefix="mnesis-040-") as folder:
        copy = Path(folder) / "sessions.db"
        try:
            shutil.copyfile(path, copy)
            if Path(f"{path}-wal").exists():
                shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        except FileNotFoundError:
            raise DatabaseNotFoundError(str(path)) from None
        except OSError as exc:
            raise MnesisStoreError(
                f"cannot read database file {path}: {exc.strerror or exc}"
            ) from exc
        try:
            kind = probe(copy, timeout)
            if kind is FileKind.EMPTY:
                raise DatabaseNotFoundError(str(path), empty=True)
            if kind is FileKind.MNESIS:
                return LegacyMigrationReport(str(path), migrated=False, dry_run=True)
            report = migrate_040_file(copy, timeout, backup=False)
        except (ForeignDatabaseError, LegacyMigrationError) as exc:
            raise type(exc)(str(exc).replace(str(copy), str(path))) from exc
        except sqlite3.Error as exc:
            raise _one_line(exc, path) from exc
    return dataclasses.replace(report, path=str(path), dry_run=True, backup=str(backup_path(path)))


def _still_040(conn: sqlite3.Connection) -> bool:
    tables = {
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
        )
    }
    return "schema_migrations" not in tables and MNESIS_040_TABLES <= tables


def _one_line(exc: Exception, path: Path) -> LegacyMigrationError:
    """The error a failed migration raises: what went wrong, and that nothing changed."""
    if isinstance(exc, LegacyMigrationError | MnesisStoreError):
        reason = str(exc)
    else:
        translated = translate_error(exc, str(path))
        reason = str(translated) if translated is not None else f"{type(exc).__name__}: {exc}"
    reason = " ".join(reason.split())
    return LegacyMigrationError(
        f"cannot migrate the mnesis 0.4.0 database {path}: {reason}; it was left untouched"
    )


# -- the backup ---------------------------------------------------------------


def backup_path(path: Path) -> Path:
    """The first free name for the backup of ``path``: ``NAME.0.4.0-backup``, then
    ``NAME.0.4.0-backup.1`` and so on (an existing backup is never overwritten)."""
    candidate = path.with_name(path.name + BACKUP_SUFFIX)
    n = 0
    while candidate.exists() or Path(f"{candidate}-wal").exists():
        n += 1
        candidate = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{n}")
    return candidate


def copy_beside(path: Path) -> list[Path]:
    """Copy the file (and its write-ahead log, if it holds frames) byte for byte to
    :func:`backup_path`, durably, readable by the owner only; the copies made."""
    target = backup_path(path)
    made: list[Path] = []
    try:
        _copy_exclusive(path, target)
        made.append(target)
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size:
            _copy_exclusive(wal, Path(f"{target}-wal"))  # SQLite reads it with the copy
            made.append(Path(f"{target}-wal"))
    except OSError as exc:
        for file in made:
            file.unlink(missing_ok=True)
        raise MnesisStoreError(f"cannot write the backup {target}: {exc.strerror or exc}") from exc
    return made


def _copy_exclusive(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(source, "rb") as reader, os.fdopen(fd, "wb", closefd=False) as writer:
            while chunk := reader.read(_COPY_CHUNK):
                writer.write(chunk)
            writer.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    with contextlib.suppress(OSError):  # the new name, durably (not every system allows it)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# -- the import ---------------------------------------------------------------


def _import(conn: sqlite3.Connection, path: str) -> LegacyMigrationReport:
    """Everything inside the transaction: rename, build our schema, copy, verify."""
    rename_tables(conn)
    check_columns(conn)
    create_schema_in_transaction(conn)
    dialect = SQLiteDialect()
    estimators: dict[str, TokenEstimator] = {}
    report = LegacyMigrationReport(path, migrated=True)
    for session_id in session_ids(conn):
        rows = read_session(conn, session_id)
        model = rows.session.model_id
        estimator = estimators.setdefault(model, TokenEstimator(model or None))
        plan = plan_session(rows, estimator)
        run(conn, _write_session(dialect, plan))
        report = _count(report, plan)
    refs = read_file_refs(conn)
    conn.executemany(
        "INSERT INTO file_refs (content_id, path, file_type, token_count, size_bytes, "
        "exploration_summary, created_at) VALUES (?, ?, ?, ?, 0, ?, ?) "
        "ON CONFLICT (content_id) DO NOTHING",
        [(cid, p, kind, tokens, summary, created / 1000) for cid, p, kind, tokens, summary,
         created in refs],
    )  # fmt: skip
    problems = run(conn, verify(None))
    if problems:
        raise LegacyMigrationError(f"the migrated sessions fail verify(): {problems[0]}")
    for table in _OUR_TABLES:
        broken = conn.execute(f"PRAGMA foreign_key_check({table})").fetchone()
        if broken is not None:
            raise LegacyMigrationError(
                f"a row of {broken[0]} refers to a missing row of {broken[2]} (rowid {broken[1]})"
            )
    return dataclasses.replace(report, file_refs=len(refs))


def _count(report: LegacyMigrationReport, plan: SessionPlan) -> LegacyMigrationReport:
    return dataclasses.replace(
        report,
        sessions=report.sessions + 1,
        messages=report.messages + len(plan.messages),
        parts=report.parts + plan.part_count,
        summaries=report.summaries + len(plan.summaries),
        unshown_parts=report.unshown_parts + plan.unshown_parts,
        orphan_summaries=report.orphan_summaries + plan.orphan_summaries,
        restored_messages=report.restored_messages + plan.restored_messages,
    )


def _write_session(dialect: SQLiteDialect, plan: SessionPlan) -> Steps[None]:
    r = plan.record
    t = r.tokens
    yield execute(
        "INSERT INTO sessions (id, parent_id, agent, model, system_prompt, config_json, "
        "created_at, updated_at, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, total_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        r.id,
        r.parent_id,
        r.agent,
        r.model,
        r.system_prompt,
        r.config_json,
        r.created_at,
        r.updated_at,
        t.input,
        t.output,
        t.cache_read,
        t.cache_write,
        t.effective_total(),
        r.cost,
    )
    for seq, message in plan.messages:
        yield from insert_message(dialect, r.id, seq, message)
    yield many(
        "UPDATE parts SET pruned_at = COALESCE(?, pruned_at), "
        "completed_at = COALESCE(?, completed_at) WHERE message_id = ? AND idx = ?",
        [(p.pruned_at, p.completed_at, p.message_id, p.idx) for p in plan.part_times],
    )
    yield many(
        "INSERT INTO summaries (id, session_id, kind, depth, level_used, text, token_count, "
        "first_seq, last_seq, message_count, model, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (s.id, r.id, s.kind, s.depth, s.level_used, s.text, s.token_count, s.first_seq,
             s.last_seq, s.message_count, s.model, s.created_at)
            for s in plan.summaries
        ],
    )  # fmt: skip
    yield many(
        "INSERT INTO summary_sources (summary_id, ord, source_kind, source_id) VALUES (?, ?, ?, ?)",
        [(s.id, i, kind, ref) for s in plan.summaries for i, (kind, ref) in enumerate(s.sources)],
    )
    yield many(
        "INSERT INTO context_items (session_id, position, kind, ref_id) VALUES (?, ?, ?, ?)",
        [(r.id, i, kind, ref) for i, (kind, ref) in enumerate(plan.context, start=1)],
    )
