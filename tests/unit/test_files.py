"""Large files: explorers per type, references, caching, the session, describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnesis import FileRefPart, MnesisConfig, MnesisSession, MockProvider, TextPart
from mnesis.errors import InvalidInputError
from mnesis.files import LargeFileHandler, detect_type, explore
from mnesis.llm.base import LLMRequest
from mnesis.models.config import FileConfig

PYTHON = """
import os
from typing import Any

class Store(Base):
    def get(self, key: str, default: Any = None) -> Any:
        ...
    async def put(self, key: str, value: bytes) -> None:
        ...

def helper(x, *args, flag=False, **kw):
    return x
"""


def test_python_outline_has_imports_classes_and_signatures() -> None:
    outline = explore("python", PYTHON)
    assert "imports: os, typing" in outline
    assert "class Store(Base)" in outline
    assert "def get(self, key: str, default: Any=None) -> Any" in outline
    assert "async put(self, key: str, value: bytes) -> None" in outline
    assert "def helper(x, *args, flag=False, **kw)" in outline
    assert "does not parse" in explore("python", "def broken(:\n")


def test_json_yaml_toml_outlines() -> None:
    data = {"users": [{"id": 1, "name": "a", "tags": ["x"]}] * 3, "total": 3, "ok": True}
    outline = explore("json", json.dumps(data))
    assert "[3 × {id: number, name: string, tags: [1 × string]}]" in outline
    assert "top-level keys: users, total, ok" in outline
    assert "schema: {server: {port: number, hosts: [2 × string]}}" in explore(
        "yaml", "server:\n  port: 80\n  hosts: [a, b]\n"
    )
    assert "schema: {tool: {mnesis: {x: number}}}" in explore("toml", "[tool.mnesis]\nx = 1\n")
    assert "does not parse" in explore("json", "{nope")


def test_markdown_csv_tsv_outlines() -> None:
    md = "# Title\ntext\n## Part A\n```\n# not a heading\n```\n### Detail\n## Part B\n"
    outline = explore("markdown", md)
    assert outline.splitlines()[1:] == ["Title", "  Part A", "    Detail", "  Part B"]
    csv_outline = explore("csv", "id,name,score\n1,ann,3\n2,bob,5\n")
    assert "3 columns, 2 data rows" in csv_outline
    assert "sample row: id=1, name=ann, score=3" in csv_outline
    assert "2 columns, 1 data rows" in explore("tsv", "a\tb\n1\t2\n")


def test_javascript_typescript_sql_log_text_outlines() -> None:
    js = (
        "import x from 'y'\nexport function render(props, ctx) {}\nexport default class App {}"
        "\nexport const VERSION = 1\nfunction local(a) {}\n"
    )
    outline = explore("javascript", js)
    for item in [
        "export function render(props, ctx)",
        "export class App",
        "export const VERSION",
        "function local(a)",
    ]:
        assert item in outline
    assert "export type Props" in explore("typescript", "export interface Props { a: string }\n")
    sql = (
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, "
        "PRIMARY KEY (id));\ncreate table if not exists t2 (a int, b numeric(10, 2));\n"
    )
    sql_outline = explore("sql", sql)
    assert "table users(id, email)" in sql_outline and "table t2(a, b)" in sql_outline
    log = "\n".join(f"2026-01-01 INFO step {i}" for i in range(100)) + "\nERROR boom\n"
    log_outline = explore("log", log)
    assert "ERROR: 1" in log_outline and "101 lines" in log_outline and "ERROR boom" in log_outline


def test_type_detection_and_binary_files() -> None:
    assert detect_type("a.py", b"print(1)") == "python"
    assert detect_type("a.unknown", b"hello") == "text"
    assert detect_type("a.txt", b"\x89PNG\r\n\x1a\n\x00\x00") == "binary"
    assert detect_type("a.txt", "héllo".encode("latin-1") + b" more text here") == "binary"


async def test_small_files_inline_and_large_files_become_cached_references(
    tmp_path: Path, db_path: str
) -> None:
    small = tmp_path / "small.py"
    small.write_text("x = 1\n")
    big = tmp_path / "big.py"
    big.write_text(PYTHON * 400)
    explored: list[str] = []
    handler = LargeFileHandler(FileConfig(inline_threshold=500))
    inline = await handler.handle(small)
    assert isinstance(inline, TextPart) and inline.text.endswith("x = 1\n")
    ref = await handler.handle(big)
    assert isinstance(ref, FileRefPart)
    assert ref.content_id.startswith("file_") and len(ref.content_id) == 37
    assert ref.file_type == "python" and ref.token_count > 500
    assert "class Store(Base)" in ref.exploration_summary
    assert len(ref.exploration_summary) < 2_500
    async with MnesisSession.open(
        model="openai/gpt-4o", db_path=db_path, provider=MockProvider()
    ) as session:
        import mnesis.files.handler as module

        original = module.explore

        def counting(kind: str, text: str) -> str:
            explored.append(kind)
            return original(kind, text)

        module.explore = counting
        try:
            await session.send("look", files=[big])
            copy = tmp_path / "copy.py"
            copy.write_bytes(big.read_bytes())
            await session.send("again", files=[copy])
        finally:
            module.explore = original
        assert explored == ["python"]  # the second, identical file came from the cache
        stored = await session.messages()
        assert isinstance(stored[2].parts[1], FileRefPart)
        assert stored[2].parts[1].path == str(copy)


async def test_the_context_shows_a_file_block_and_the_store_never_holds_the_content(
    tmp_path: Path, db_path: str
) -> None:
    big = tmp_path / "data.json"
    big.write_text(json.dumps({"rows": [{"secret_value_xyz": i} for i in range(5_000)]}))
    seen: list[str] = []

    def model(request: LLMRequest) -> str:
        seen.append(str(request.messages[-1]["content"]))
        return "ok"

    async with MnesisSession.open(
        model="openai/gpt-4o", db_path=db_path, provider=MockProvider(model)
    ) as session:
        await session.send("summarise this", files=[str(big)])
        assert "[FILE file_" in seen[0] and "type=json" in seen[0]
        assert "[5,000 × {secret_value_xyz: number}]" in seen[0]
    raw = Path(db_path).read_bytes()
    assert raw.count(b"secret_value_xyz") <= 3  # the outline, never the 5,000 rows


async def test_binary_files_are_described_not_decoded(tmp_path: Path, db_path: str) -> None:
    image = tmp_path / "logo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    async with MnesisSession.open(
        model="openai/gpt-4o", db_path=db_path, provider=MockProvider()
    ) as session:
        await session.send("what is this", files=[image])
        (part,) = [p for p in (await session.messages())[0].parts if isinstance(p, FileRefPart)]
        assert part.file_type == "binary"
        assert part.exploration_summary.startswith("png image, 2,568 bytes")


async def test_describe_file_reports_changed_and_missing_files(
    tmp_path: Path, db_path: str
) -> None:
    config = MnesisConfig.model_validate({"file": {"inline_threshold": 10}})
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n" + "words here\n" * 200)
    async with MnesisSession.open(
        model="openai/gpt-4o", config=config, db_path=db_path, provider=MockProvider()
    ) as session:
        await session.send("read", files=[path])
        file_id = next(
            p.content_id for p in (await session.messages())[0].parts if isinstance(p, FileRefPart)
        )
        described = await session.describe(file_id)
        assert described.kind == "file" and described.status == "unchanged"
        assert described.file_type == "markdown" and "Notes" in described.exploration_summary
        path.write_text("# Changed\n")
        assert (await session.describe(file_id)).status == "changed"
        path.unlink()
        assert (await session.describe(file_id)).status == "missing"
        assert (await session.grep(file_id))[0].message_id == (await session.messages())[0].id


async def test_file_ids_survive_compaction(tmp_path: Path, db_path: str) -> None:
    config = MnesisConfig.model_validate(
        {
            "file": {"inline_threshold": 10},
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500, "auto": False},
        }
    )

    def model(request: LLMRequest) -> str:
        content = str(request.messages[-1]["content"])
        return "Summary without ids." if "<transcript>" in content else "ok " * 40

    path = tmp_path / "schema.sql"
    path.write_text("CREATE TABLE t (a int);\n" * 50)
    async with MnesisSession.open(
        model="openai/gpt-4o", config=config, db_path=db_path, provider=MockProvider(model)
    ) as session:
        await session.send("look at the schema", files=[path])
        for i in range(20):
            await session.send(f"more chatter {i} " * 20)
        await session.compact()
        file_id = next(
            p.content_id for p in (await session.messages())[0].parts if isinstance(p, FileRefPart)
        )
        context = await session.context_for_next_turn()
        assert file_id in str(context[0]["content"])  # the summary's identifier footer
        assert (await session.describe(file_id)).status == "unchanged"


async def test_bad_file_arguments_are_clear_errors(tmp_path: Path, db_path: str) -> None:
    async with MnesisSession.open(
        model="openai/gpt-4o", db_path=db_path, provider=MockProvider()
    ) as session:
        with pytest.raises(InvalidInputError, match="file not found"):
            await session.send("x", files=[tmp_path / "nope.txt"])
        with pytest.raises(InvalidInputError, match="not a regular file"):
            await session.send("x", files=[tmp_path])
        with pytest.raises(InvalidInputError, match="list of paths"):
            await session.send("x", files=str(tmp_path / "a.txt"))  # type: ignore[arg-type]
        assert await session.messages() == []
