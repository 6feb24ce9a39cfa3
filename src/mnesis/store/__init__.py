"""Storage: the protocol, the backends, and where a session's store lives."""

from mnesis.store.base import (
    AppendOutcome,
    CompactionLocks,
    ContextChanges,
    ContextEntry,
    ContextMark,
    FileRefs,
    MapRuns,
    MessageLog,
    NewMessage,
    NewPart,
    RecallIndex,
    ReplyDrafts,
    SessionRecord,
    Store,
    SummaryDAG,
    ToolResult,
)
from mnesis.store.postgres import PostgresStore
from mnesis.store.records import config_json
from mnesis.store.registry import (
    acquire_store,
    describe_location,
    is_postgres_url,
    migrate_040,
    open_read_only,
    release_store,
    resolve_db_url,
)
from mnesis.store.sqlite import SQLiteStore
from mnesis.store.sqlite.mnesis040 import LegacyMigrationReport

__all__ = [
    "AppendOutcome",
    "CompactionLocks",
    "ContextChanges",
    "ContextEntry",
    "ContextMark",
    "FileRefs",
    "LegacyMigrationReport",
    "MapRuns",
    "MessageLog",
    "NewMessage",
    "NewPart",
    "PostgresStore",
    "RecallIndex",
    "ReplyDrafts",
    "SQLiteStore",
    "SessionRecord",
    "Store",
    "SummaryDAG",
    "ToolResult",
    "acquire_store",
    "config_json",
    "describe_location",
    "is_postgres_url",
    "migrate_040",
    "open_read_only",
    "release_store",
    "resolve_db_url",
]
