"""SQLite reads behind grep / describe / expand: index lookups and DAG walks."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


def fts_query(session_id: str, terms: Sequence[str]) -> str:
    """An FTS5 query: the session's rows holding the terms as a phrase (adjacent,
    in order), the last term as a prefix."""

    def quote(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    phrase = " + ".join(quote(term) for term in terms) + " *"
    return f"sid : {quote(session_id)} AND body : ({phrase})"


def search(
    conn: sqlite3.Connection, session_id: str, terms: Sequence[str], after: int, limit: int
) -> list[tuple[int, str]]:
    """Index hits after key ``after``: (key, message id), in storage order."""
    rows = conn.execute(
        "SELECT h.rowid, p.message_id FROM "
        "(SELECT rowid FROM search_index WHERE search_index MATCH ? AND rowid > ? "
        " ORDER BY rowid LIMIT ?) h "
        "JOIN parts p ON p.id = h.rowid / 2 ORDER BY h.rowid",
        (fts_query(session_id, terms), after, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def covering_summaries(
    conn: sqlite3.Connection, session_id: str, message_ids: Sequence[str]
) -> dict[str, str]:
    """For each message, the summary node in the active context that covers it
    (the top of its chain: a node nothing condensed further is in the context)."""
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    rows = conn.execute(
        "WITH RECURSIVE up(msg, node) AS ("  # noqa: S608 - only '?' marks are interpolated
        f" SELECT source_id, summary_id FROM summary_sources WHERE source_id IN ({marks})"
        " UNION ALL"
        " SELECT up.msg, ss.summary_id FROM up JOIN summary_sources ss ON ss.source_id = up.node"
        ") SELECT up.msg, up.node FROM up WHERE NOT EXISTS"
        " (SELECT 1 FROM summary_sources top WHERE top.source_id = up.node)",
        tuple(message_ids),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def summary_message_ids(conn: sqlite3.Connection, summary_id: str) -> list[str]:
    """Every message under a node, recursively, in sequence order."""
    rows = conn.execute(
        "WITH RECURSIVE down(kind, id) AS ("
        " SELECT source_kind, source_id FROM summary_sources WHERE summary_id = ?"
        " UNION ALL"
        " SELECT ss.source_kind, ss.source_id FROM down"
        " JOIN summary_sources ss ON ss.summary_id = down.id WHERE down.kind = 'summary'"
        ") SELECT m.id FROM down JOIN messages m ON m.id = down.id"
        " WHERE down.kind = 'message' ORDER BY m.seq",
        (summary_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def parent_of(conn: sqlite3.Connection, node_id: str) -> str | None:
    """The summary node that directly covers a message or a summary, if any."""
    row = conn.execute(
        "SELECT summary_id FROM summary_sources WHERE source_id = ?", (node_id,)
    ).fetchone()
    return None if row is None else str(row[0])
