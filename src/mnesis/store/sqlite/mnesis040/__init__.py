"""Migrating a database of the published mnesis 0.4.0 into this schema, in place."""

from mnesis.store.sqlite.mnesis040.report import LegacyMigrationReport
from mnesis.store.sqlite.mnesis040.write import (
    BACKUP_SUFFIX,
    backup_path,
    dry_run_040_file,
    migrate_040_file,
)

__all__ = [
    "BACKUP_SUFFIX",
    "LegacyMigrationReport",
    "backup_path",
    "dry_run_040_file",
    "migrate_040_file",
]
