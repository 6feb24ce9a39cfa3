"""The public surface: names, import paths, layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mnesis

SPEC_NAMES = {
    "MnesisSession",
    "MnesisConfig",
    "CompactionConfig",
    "FileConfig",
    "StoreConfig",
    "OperatorConfig",
    "SessionConfig",
    "TokenUsage",
    "TurnResult",
    "RecordResult",
    "TextDelta",
    "TurnComplete",
    "TurnSnapshot",
    "ContextBreakdown",
    "CompactionResult",
    "MessagePart",
    "TextPart",
    "ToolPart",
    "FileRefPart",
    "MessageWithParts",
    "FinishReason",
    "EventBus",
    "MnesisEvent",
    "TokenEstimator",
    "MnesisStoreError",
    "SessionNotFoundError",
}
SRC = Path(mnesis.__file__).parent
# Lower layers never import higher ones.
LAYERS = [
    "errors",
    "models",
    "events",
    "tokens",
    "store",
    "llm",
    "context",
    "compaction",
    "files",
    "recall",
    "session",
    "operators",
    "cli",
]


def test_all_is_sorted_and_exported() -> None:
    assert mnesis.__all__ == sorted(mnesis.__all__)
    for name in mnesis.__all__:
        assert hasattr(mnesis, name), name


def test_spec_public_names_are_importable() -> None:
    missing = SPEC_NAMES - set(mnesis.__all__)
    assert not missing


def test_documented_import_paths_exist() -> None:
    from mnesis.events.bus import EventBus, MnesisEvent
    from mnesis.events.payloads import CompactionCompletedPayload
    from mnesis.models.config import RetryConfig

    assert MnesisEvent.COMPACTION_COMPLETED.value == "compaction.completed"
    assert EventBus is mnesis.EventBus
    assert RetryConfig().max_retries == 0
    assert "level_used" in CompactionCompletedPayload.__annotations__


def test_import_mnesis_does_not_import_litellm() -> None:
    code = "import sys, mnesis; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "mnesis" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        own = _layer(".".join(rel.parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                target = _layer(node.module)
                if target is not None and target > own:
                    violations.append(f"{rel} imports {node.module}")
    assert violations == []


def test_every_sql_statement_is_parameterised() -> None:
    # No %-formatting or .format() into SQL in the store layer.
    source = (SRC / "store" / "sqlite.py").read_text()
    assert ".format(" not in source
    assert '" %' not in source
