"""Operator inputs from JSONL files, outputs to JSONL files, and runs that resume.

With a ``run_id``, every item's status (running, done, failed) is kept in the
store as it changes, so a run killed halfway and started again with the same
id processes only the items that never finished: a finished item is never
processed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from mnesis.errors import InvalidInputError
from mnesis.models.config import StoreConfig
from mnesis.operators._pool import run_pool
from mnesis.store import Store, acquire_store, release_store, resolve_db_url

PathLike = str | os.PathLike[str]


def _read_jsonl(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise InvalidInputError(f"{path}:{number} is not valid JSON: {exc}") from exc


def open_inputs(inputs: Iterable[Any] | PathLike) -> tuple[Iterable[Any], int, str]:
    """The items to map, how many there are, and a digest of them (so a resumed
    run can tell its inputs changed). A JSONL path is read lazily."""
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        if not path.is_file():
            raise InvalidInputError(f"input file not found: {path}")
        digest = hashlib.sha256()
        total = 0
        with path.open("rb") as handle:
            for line in handle:
                digest.update(line)
                total += bool(line.strip())
        if not total:
            raise InvalidInputError(f"input file {path} has no items")
        return _read_jsonl(path), total, digest.hexdigest()
    if isinstance(inputs, dict | bytes):
        raise InvalidInputError("inputs must be an iterable of items or a .jsonl path")
    items = list(inputs)
    if not items:
        raise InvalidInputError("inputs are empty: nothing to map")
    blob = json.dumps(items, sort_keys=True, default=str).encode()
    return items, len(items), hashlib.sha256(blob).hexdigest()


def write_jsonl(path: PathLike, rows: Iterable[str]) -> None:
    """Write JSON lines atomically (a temporary file, then a rename)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row + "\n")
    temp.replace(target)


def fingerprint(*parts: Any) -> str:
    """What identifies a run's work: template, schema, model and operator options."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class RunTracker:
    """Item statuses of one run, kept in the store."""

    def __init__(self, store: Store, run_id: str, statuses: dict[int, str]) -> None:
        self.store = store
        self.run_id = run_id
        self.statuses = statuses

    @classmethod
    async def open(cls, run_id: str, db_path: str | None, operator: str, work: str) -> RunTracker:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInputError("run_id must be a non-empty string")
        config = StoreConfig()
        store = await acquire_store(resolve_db_url(db_path, config), config)
        try:
            statuses = await store.start_map_run(run_id, operator, work)
        except BaseException:
            await release_store(store)
            raise
        return cls(store, run_id, statuses)

    @classmethod
    async def open_existing(cls, run_id: str, db_path: str | None) -> RunTracker:
        config = StoreConfig()
        store = await acquire_store(resolve_db_url(db_path, config), config)
        return cls(store, run_id, {})

    def finished(self, index: int) -> bool:
        return self.statuses.get(index) in ("done", "failed")

    async def running(self, index: int) -> None:
        await self.store.set_map_item(self.run_id, index, "running")

    async def finish(self, index: int, success: bool, result_json: str) -> None:
        status = "done" if success else "failed"
        await self.store.set_map_item(self.run_id, index, status, result_json)
        self.statuses[index] = status

    async def results(self) -> list[str]:
        return [
            r
            for _, status, r in await self.store.map_results(self.run_id)
            if r is not None and status in ("done", "failed")
        ]

    async def close(self) -> None:
        await release_store(self.store)


async def save_outputs(path: PathLike, rows: list[str]) -> None:
    await asyncio.to_thread(write_jsonl, path, rows)


class _Result(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def success(self) -> bool: ...


R = TypeVar("R", bound=_Result)


def result_json(result: BaseModel) -> str:
    """A result as one JSON line (inputs that are not JSON become strings)."""
    return json.dumps(to_jsonable_python(result, fallback=str), ensure_ascii=False)


async def run_tracked(
    items: Iterable[Any],
    worker: Callable[[int, Any], Awaitable[R]],
    concurrency: int,
    tracker: RunTracker | None,
    output_path: PathLike | None,
) -> AsyncIterator[R]:
    """Run the items a tracker has not finished, record each result as it comes,
    and write every result of the run to ``output_path`` at the end."""

    async def tracked(index: int, item: Any) -> R:
        if tracker is not None:
            await tracker.running(index)
        result = await worker(index, item)
        if tracker is not None:
            await tracker.finish(index, result.success, result_json(result))  # type: ignore[arg-type]
        return result

    pending = (
        (i, item) for i, item in enumerate(items) if tracker is None or not tracker.finished(i)
    )
    produced: list[R] = []
    try:
        async for result in run_pool(pending, tracked, concurrency):
            if output_path is not None and tracker is None:
                produced.append(result)
            yield result
        if output_path is not None:
            rows = (
                await tracker.results()
                if tracker is not None
                else [result_json(r) for r in sorted(produced, key=lambda r: r.index)]  # type: ignore[arg-type]
            )
            await save_outputs(output_path, rows)
    finally:
        if tracker is not None:
            await tracker.close()
