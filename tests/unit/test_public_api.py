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
    "integrations",
    "web",
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


BACKENDS = ("sqlite", "postgres")


def _imports() -> list[tuple[Path, str, list[str]]]:
    """(file relative to src, imported module, names) for every absolute import in mnesis."""
    found = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((rel, node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                found += [(rel, alias.name, []) for alias in node.names]
    return found


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for rel, module, _ in _imports():
        own = _layer(".".join(rel.with_suffix("").parts))
        target = _layer(module)
        if own is not None and target is not None and target > own:
            violations.append(f"{rel} imports {module}")
    assert violations == []


def test_only_the_store_layer_names_a_backend() -> None:
    # Above store/, code sees the Store protocol and the registry, never SQLite or PostgreSQL.
    violations = []
    for rel, module, names in _imports():
        if rel.parts[:2] == ("mnesis", "store"):
            continue
        parts = module.split(".")
        named = parts[2] if parts[:2] == ["mnesis", "store"] and len(parts) > 2 else None
        if named in BACKENDS or (module == "mnesis.store" and set(names) & set(BACKENDS)):
            violations.append(f"{rel} imports {module} {names}")
    assert violations == []


def test_import_mnesis_does_not_import_a_database_driver() -> None:
    code = "import sys, mnesis; print('asyncpg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_sql_statement_is_parameterised() -> None:
    # No %-formatting or .format() into SQL anywhere in the store layer.
    for path in (SRC / "store").rglob("*.py"):
        source = path.read_text()
        assert ".format(" not in source, path
        assert '" %' not in source, path
