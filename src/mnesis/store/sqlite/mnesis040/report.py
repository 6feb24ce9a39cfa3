"""What a migration from mnesis 0.4.0 did, or a dry run would do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LegacyMigrationReport:
    """Counts of what was carried over from a mnesis 0.4.0 database.

    Attributes:
        path: The database file.
        migrated: False when there was nothing to do (the file is ours already).
        dry_run: True when nothing was changed (the counts are what would be).
        sessions, messages, parts, summaries, file_refs: What now lives in our tables.
        unshown_parts: Parts 0.4.0 stored but never showed the model (step markers,
            patches); they stay verbatim in the ``mnesis040_message_parts`` table only.
        orphan_summaries: Summary nodes nothing in 0.4.0's context reached; they stay
            in ``mnesis040_summary_nodes`` only.
        restored_messages: Messages neither in 0.4.0's context nor under a summary
            there, put back into the context view in their place.
        backup: The byte-for-byte copy made before the migration (for a dry run:
            where it would go).
    """

    path: str
    migrated: bool
    dry_run: bool = False
    sessions: int = 0
    messages: int = 0
    parts: int = 0
    summaries: int = 0
    file_refs: int = 0
    unshown_parts: int = 0
    orphan_summaries: int = 0
    restored_messages: int = 0
    backup: str | None = None
