"""Reading a mnesis 0.4.0 file's rows, one session at a time.

The import first renames 0.4.0's tables (``sessions`` becomes
``mnesis040_sessions`` and so on: our schema reuses three of their names), so
everything here reads the renamed tables. Columns 0.4.0 added to an existing
file only later (``sessions.system_prompt``, the summary DAG's ``kind``,
``parent_node_ids`` and ``superseded``) may be missing and take 0.4.0's own
defaults; any other missing column means the file is not what 0.4.0 wrote,
and the import stops.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from mnesis.errors import LegacyMigrationError

# Their table -> the name it keeps in the migrated file (constants: no SQL is built
# from input).
RENAMES = (
    ("sessions", "mnesis040_sessions"),
    ("messages", "mnesis040_messages"),
    ("message_parts", "mnesis040_message_parts"),
    ("summary_nodes", "mnesis040_summary_nodes"),
    ("context_items", "mnesis040_context_items"),
    ("file_references", "mnesis040_file_references"),
)

_REQUIRED = {
    "mnesis040_sessions": {
        "id", "parent_id", "created_at", "updated_at", "model_id", "provider_id", "agent",
    },
    "mnesis040_messages": {
        "id", "session_id", "role", "created_at", "model_id", "is_summary", "tokens_input",
        "tokens_output", "tokens_cache_read", "tokens_cache_write", "tokens_total", "cost",
        "finish_reason", "error_code", "error_message_text",
    },
    "mnesis040_message_parts": {
        "id", "message_id", "part_type", "part_index", "content", "tool_state",
        "compacted_at", "completed_at",
    },
    "mnesis040_summary_nodes": {
        "id", "session_id", "span_start_message_id", "span_end_message_id", "content",
        "token_count", "created_at", "model_id", "compaction_level",
    },
    "mnesis040_context_items": {"session_id", "item_type", "item_id", "position"},
    "mnesis040_file_references": {
        "content_id", "path", "file_type", "token_count", "exploration_summary", "created_at",
    },
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class OldSession:
    id: str
    parent_id: str | None
    created_at: int  # Unix milliseconds, as 0.4.0 kept every time
    updated_at: int
    model_id: str
    agent: str
    system_prompt: str


@dataclass(frozen=True, slots=True)
class OldMessage:
    id: str
    role: str
    created_at: int
    model_id: str
    is_summary: bool
    tokens: tuple[int, int, int, int, int]  # input, output, cache read, cache write, total
    cost: float
    finish_reason: str | None
    error_code: str | None
    error_text: str | None
    rowid: int


@dataclass(frozen=True, slots=True)
class OldPart:
    id: str
    message_id: str
    part_type: str
    content: str
    tool_state: str | None
    compacted_at: int | None
    completed_at: int | None


@dataclass(frozen=True, slots=True)
class OldSummaryNode:
    id: str
    span_start: str
    span_end: str
    content: str
    created_at: int
    model_id: str
    compaction_level: int
    kind: str
    parent_node_ids: str  # a JSON array of node ids
    rowid: int


@dataclass(slots=True)
class OldSessionRows:
    """One 0.4.0 session with everything that belongs to it."""

    session: OldSession
    messages: list[OldMessage] = field(default_factory=list)
    parts: dict[str, list[OldPart]] = field(default_factory=dict)  # message id -> in order
    nodes: list[OldSummaryNode] = field(default_factory=list)
    context: list[tuple[str, str]] = field(default_factory=list)  # (item_type, item_id)


def rename_tables(conn: sqlite3.Connection) -> None:
    """Give 0.4.0's tables their ``mnesis040_`` names (their indexes follow them)."""
    for old, new in RENAMES:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


def check_columns(conn: sqlite3.Connection) -> None:
    """``LegacyMigrationError`` unless every column the import reads is there."""
    for table, needed in _REQUIRED.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = sorted(needed - have)
        if missing:
            original = table.removeprefix("mnesis040_")
            raise LegacyMigrationError(
                f"its {original} table lacks {', '.join(missing)}, which mnesis 0.4.0 wrote"
            )


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def session_ids(conn: sqlite3.Connection) -> list[str]:
    """Every session, parents before their children (then oldest first)."""
    rows = conn.execute(
        "WITH RECURSIVE tree(id, depth) AS ("
        " SELECT id, 0 FROM mnesis040_sessions WHERE parent_id IS NULL"
        " OR parent_id NOT IN (SELECT id FROM mnesis040_sessions)"
        " UNION ALL SELECT s.id, tree.depth + 1 FROM mnesis040_sessions s"
        " JOIN tree ON s.parent_id = tree.id WHERE tree.depth < 1000)"
        " SELECT tree.id FROM tree JOIN mnesis040_sessions s ON s.id = tree.id"
        " GROUP BY tree.id ORDER BY MIN(tree.depth), s.created_at, s.rowid"
    ).fetchall()
    found = [str(r[0]) for r in rows]
    (total,) = conn.execute("SELECT count(*) FROM mnesis040_sessions").fetchone()
    if len(found) != total:
        raise LegacyMigrationError("the sessions' parent links form a cycle")
    return found


def read_session(conn: sqlite3.Connection, session_id: str) -> OldSessionRows:
    """One session's rows: messages, parts, summary nodes and context view."""
    prompt = (
        "system_prompt"
        if _has_column(conn, "mnesis040_sessions", "system_prompt")
        else "'' AS system_prompt"
    )
    s = conn.execute(
        f"SELECT id, parent_id, created_at, updated_at, model_id, agent, {prompt} "  # noqa: S608
        "FROM mnesis040_sessions WHERE id = ?",
        (session_id,),
    ).fetchone()
    rows = OldSessionRows(
        OldSession(s[0], s[1], int(s[2]), int(s[3]), s[4] or "", s[5] or "default", s[6] or "")
    )
    for r in conn.execute(
        "SELECT id, role, created_at, model_id, is_summary, tokens_input, tokens_output, "
        "tokens_cache_read, tokens_cache_write, tokens_total, cost, finish_reason, error_code, "
        "error_message_text, rowid FROM mnesis040_messages WHERE session_id = ? "
        "ORDER BY created_at, rowid",
        (session_id,),
    ):
        tokens = (int(r[5] or 0), int(r[6] or 0), int(r[7] or 0), int(r[8] or 0), int(r[9] or 0))
        rows.messages.append(
            OldMessage(
                r[0], r[1], int(r[2]), r[3] or "", bool(r[4]), tokens, float(r[10] or 0.0),
                r[11], r[12], r[13], int(r[14]),
            )
        )  # fmt: skip
    for r in conn.execute(
        "SELECT p.id, p.message_id, p.part_type, p.content, p.tool_state, p.compacted_at, "
        "p.completed_at FROM mnesis040_message_parts p "
        "JOIN mnesis040_messages m ON m.id = p.message_id WHERE m.session_id = ? "
        "ORDER BY p.message_id, p.part_index, p.rowid",
        (session_id,),
    ):
        rows.parts.setdefault(r[1], []).append(OldPart(*r))
    dag = _has_column(conn, "mnesis040_summary_nodes", "parent_node_ids")
    extra = "kind, parent_node_ids" if dag else "'leaf' AS kind, '[]' AS parent_node_ids"
    for r in conn.execute(
        "SELECT id, span_start_message_id, span_end_message_id, content, created_at, "  # noqa: S608
        f"model_id, compaction_level, {extra}, rowid FROM mnesis040_summary_nodes "
        "WHERE session_id = ? ORDER BY created_at, rowid",
        (session_id,),
    ):
        rows.nodes.append(
            OldSummaryNode(
                r[0], r[1] or "", r[2] or "", r[3] or "", int(r[4]), r[5] or "", int(r[6] or 1),
                r[7] or "leaf", r[8] or "[]", int(r[9]),
            )
        )  # fmt: skip
    rows.context = [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            "SELECT item_type, item_id FROM mnesis040_context_items WHERE session_id = ? "
            "ORDER BY position, rowid",
            (session_id,),
        )
    ]
    return rows


def read_file_refs(conn: sqlite3.Connection) -> list[tuple[str, str, str, int, str, int]]:
    """Every file reference: content id, path, type, tokens, exploration summary, time."""
    return [
        (r[0], r[1], r[2] or "unknown", int(r[3] or 0), r[4] or "", int(r[5]))
        for r in conn.execute(
            "SELECT content_id, path, file_type, token_count, exploration_summary, created_at "
            "FROM mnesis040_file_references ORDER BY created_at, rowid"
        )
    ]
