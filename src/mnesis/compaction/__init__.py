"""Compaction: thresholds, the background pass, the three levels, pruning."""

from mnesis.compaction.engine import CompactionEngine, entry_tokens

__all__ = ["CompactionEngine", "entry_tokens"]
