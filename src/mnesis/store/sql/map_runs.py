"""Operator runs: which items of a map are done, so a rerun resumes where it stopped."""

from __future__ import annotations

import time

from mnesis.errors import InvalidInputError
from mnesis.store.sql.statements import Steps, all_rows, execute, one, rowcount


def start_map_run(run_id: str, operator: str, fingerprint: str) -> Steps[dict[int, str]]:
    """Create the run, or reopen it when it is the same work; each known item's status."""
    created = yield rowcount(
        "INSERT INTO map_runs (id, operator, fingerprint, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        run_id,
        operator,
        fingerprint,
        time.time(),
    )
    if created:
        return {}
    row = yield one("SELECT operator, fingerprint FROM map_runs WHERE id = ? FOR UPDATE", run_id)
    if tuple(row) != (operator, fingerprint):
        raise InvalidInputError(
            f"run {run_id!r} exists for different work (another operator, "
            "template, schema, model or inputs); pick a new run_id"
        )
    items = yield all_rows("SELECT idx, status FROM map_items WHERE run_id = ?", run_id)
    return {int(r[0]): str(r[1]) for r in items}


def set_map_item(run_id: str, index: int, status: str, result_json: str | None) -> Steps[None]:
    """Record an item's status (and its result once finished)."""
    yield execute(
        "INSERT INTO map_items (run_id, idx, status, result_json, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, idx) DO UPDATE SET "
        "status = excluded.status, result_json = excluded.result_json, "
        "updated_at = excluded.updated_at",
        run_id,
        index,
        status,
        result_json,
        time.time(),
    )


def map_results(run_id: str) -> Steps[list[tuple[int, str, str | None]]]:
    """``(index, status, result_json)`` of every item, in index order."""
    rows = yield all_rows(
        "SELECT idx, status, result_json FROM map_items WHERE run_id = ? ORDER BY idx", run_id
    )
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]
