"""Numbered schema migrations, one folder of ``NNNN_name.sql`` files per backend."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from mnesis.errors import SchemaVersionError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: applied once, in its own transaction, in version order."""

    version: int
    name: str
    sql: str


def load_migrations(backend: str) -> list[Migration]:
    """The migrations of ``backend`` ("sqlite" or "postgres"), sorted, numbers checked."""
    folder = resources.files(__package__).joinpath(backend)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    numbers = [m.version for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations must be numbered 1..n without gaps: {numbers}")
    return found


def refuse_newer(where: str, current: int, latest: int) -> None:
    """``SchemaVersionError`` when the database was migrated by a newer mnesis."""
    if current > latest:
        raise SchemaVersionError(
            f"database {where} has schema version {current}, newer than this "
            f"mnesis understands ({latest}); upgrade mnesis"
        )
