"""Deterministic structural summaries of files, one explorer per type.

An explorer sees the file's text (binary files never reach one) and returns a
short outline: what a model needs to decide whether, and where, to look
closer. No model is called; the same file always gives the same summary.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

MAX_SUMMARY_CHARS = 2_400
MAX_ITEMS = 40

_BY_SUFFIX = {
    ".py": "python",
    ".pyi": "python",
    ".json": "json",
    ".jsonl": "jsonl",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".tsv": "tsv",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".sql": "sql",
    ".log": "log",
    ".txt": "text",
}
_BINARY_SIGNATURES = (
    (b"\x89PNG", "png image"),
    (b"\xff\xd8\xff", "jpeg image"),
    (b"GIF8", "gif image"),
    (b"%PDF", "pdf document"),
    (b"PK\x03\x04", "zip archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\x7fELF", "ELF executable"),
    (b"SQLite format 3", "sqlite database"),
)


def detect_type(path: str, head: bytes) -> str:
    """``binary`` for non-text content, else a type from the suffix (``text`` by default)."""
    if b"\x00" in head[:8192]:
        return "binary"
    try:
        head[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head[:8192]) - 4:  # not just a character cut at the boundary
            return "binary"
    return _BY_SUFFIX.get(PurePath(path).suffix.lower(), "text")


def describe_binary(head: bytes, size: int) -> str:
    kind = next((name for sig, name in _BINARY_SIGNATURES if head.startswith(sig)), "binary data")
    return f"{kind}, {size:,} bytes (binary: not decoded into the context)"


def _cap(lines: list[str]) -> str:
    text = "\n".join(lines)
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 20].rsplit("\n", 1)[0] + "\n… (outline cut)"
    return text


def _more(items: list[str], label: str) -> list[str]:
    if len(items) > MAX_ITEMS:
        return [*items[:MAX_ITEMS], f"… and {len(items) - MAX_ITEMS} more {label}"]
    return items


def explore_text(text: str) -> str:
    lines = text.splitlines()
    head = [f"  {line[:160]}" for line in lines[:8]]
    tail = [f"  {line[:160]}" for line in lines[-5:]] if len(lines) > 13 else []
    out = [f"{len(lines):,} lines, {len(text):,} characters", "head:", *head]
    if tail:
        out += ["tail:", *tail]
    return _cap(out)


def explore_python(text: str) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return _cap([f"python (does not parse: {exc.msg}, line {exc.lineno})", explore_text(text)])
    imports: list[str] = []
    items: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            imports += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append(f"{'.' * node.level}{node.module or ''}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            items.append(f"def {_signature(node)}")
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            items.append(f"class {node.name}({bases})" if bases else f"class {node.name}")
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    items.append(f"    def {_signature(sub)}")
    lines = [f"python, {len(text.splitlines()):,} lines"]
    if imports:
        lines.append("imports: " + ", ".join(dict.fromkeys(imports)))
    return _cap(lines + _more(items, "definitions"))


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{prefix}{node.name}({ast.unparse(node.args)}){returns}"


def _sketch(value: Any, depth: int = 0) -> str:
    if isinstance(value, dict):
        if depth >= 3:
            return f"{{…{len(value)} keys}}"
        keys = list(value)[:12]
        inner = ", ".join(f"{k}: {_sketch(value[k], depth + 1)}" for k in keys)
        more = f", …{len(value) - 12} more" if len(value) > 12 else ""
        return "{" + inner + more + "}"
    if isinstance(value, list):
        first = _sketch(value[0], depth + 1) if value else "empty"
        return f"[{len(value):,} × {first}]"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else type(value).__name__


def explore_json(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return _cap([f"json (does not parse: {exc})", explore_text(text)])
    lines = [f"json, {len(text):,} characters", f"schema: {_sketch(data)}"]
    if isinstance(data, dict):
        lines.append("top-level keys: " + ", ".join(list(data)[:MAX_ITEMS]))
    return _cap(lines)


def explore_jsonl(text: str) -> str:
    rows = [line for line in text.splitlines() if line.strip()]
    try:
        first = json.loads(rows[0]) if rows else None
    except ValueError:
        return explore_text(text)
    return _cap([f"jsonl, {len(rows):,} records", f"first record: {_sketch(first)}"])


def explore_yaml(text: str) -> str:
    try:
        import yaml

        data = yaml.safe_load(text)
    except Exception as exc:  # missing PyYAML or invalid YAML: outline the text
        return _cap([f"yaml (not parsed: {type(exc).__name__})", explore_text(text)])
    return _cap([f"yaml, {len(text.splitlines()):,} lines", f"schema: {_sketch(data)}"])


def explore_toml(text: str) -> str:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return _cap([f"toml (does not parse: {exc})", explore_text(text)])
    return _cap([f"toml, {len(text.splitlines()):,} lines", f"schema: {_sketch(data)}"])


def explore_markdown(text: str) -> str:
    headings = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = re.match(r"(#{1,6})\s+(.*)", line)
        if match and not fenced:
            headings.append("  " * (len(match[1]) - 1) + match[2].strip())
    lines = [f"markdown, {len(text.splitlines()):,} lines, {len(headings)} headings"]
    return _cap(lines + _more(headings, "headings"))


def _explore_delimited(text: str, delimiter: str, kind: str) -> str:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, [])
    sample = next(reader, None)
    rows = (1 if sample is not None else 0) + sum(1 for _ in reader)
    lines = [
        f"{kind}, {len(header)} columns, {rows:,} data rows",
        "columns: " + ", ".join(header[:MAX_ITEMS]),
    ]
    if sample is not None:
        lines.append(
            "sample row: "
            + ", ".join(f"{h}={v[:40]}" for h, v in zip(header, sample, strict=False))
        )
    return _cap(lines)


def explore_csv(text: str) -> str:
    return _explore_delimited(text, ",", "csv")


def explore_tsv(text: str) -> str:
    return _explore_delimited(text, "\t", "tsv")


_JS_PATTERNS = (
    (
        re.compile(
            r"^export\s+(?:default\s+)?(?:async\s+)?function\s*\*?\s*(\w*)\s*(\([^)]*\))", re.M
        ),
        "export function {0}{1}",
    ),
    (
        re.compile(r"^export\s+(?:default\s+)?(?:abstract\s+)?class\s+(\w+)", re.M),
        "export class {0}",
    ),
    (re.compile(r"^export\s+(?:const|let|var)\s+(\w+)", re.M), "export const {0}"),
    (re.compile(r"^export\s+(?:interface|type|enum)\s+(\w+)", re.M), "export type {0}"),
    (re.compile(r"^(?:async\s+)?function\s*\*?\s*(\w+)\s*(\([^)]*\))", re.M), "function {0}{1}"),
    (re.compile(r"^(?:abstract\s+)?class\s+(\w+)", re.M), "class {0}"),
)


def _explore_js(text: str, kind: str) -> str:
    found: list[tuple[int, str]] = []
    for pattern, shape in _JS_PATTERNS:
        for match in pattern.finditer(text):
            found.append((match.start(), shape.format(*match.groups())))
    ordered = list(dict.fromkeys(item for _, item in sorted(found)))
    lines = [f"{kind}, {len(text.splitlines()):,} lines"]
    return _cap(lines + _more(ordered, "declarations"))


def explore_javascript(text: str) -> str:
    return _explore_js(text, "javascript")


def explore_typescript(text: str) -> str:
    return _explore_js(text, "typescript")


_CREATE = re.compile(
    r"create\s+(?:temp(?:orary)?\s+)?table\s+(?:if\s+not\s+exists\s+)?([\w.\"`]+)\s*\((.*?)\)\s*;",
    re.I | re.S,
)


def explore_sql(text: str) -> str:
    tables = []
    for match in _CREATE.finditer(text):
        columns = []
        for raw in re.split(r",(?![^(]*\))", match[2]):
            first = raw.strip().split()
            if first and first[0].upper() not in {
                "PRIMARY",
                "FOREIGN",
                "UNIQUE",
                "CHECK",
                "CONSTRAINT",
            }:
                columns.append(first[0].strip('"`'))
        tables.append(f"table {match[1].strip(chr(34) + '`')}({', '.join(columns)})")
    lines = [f"sql, {len(text.splitlines()):,} lines, {len(tables)} tables"]
    return _cap(lines + _more(tables, "tables")) if tables else explore_text(text)


def explore_log(text: str) -> str:
    lines = text.splitlines()
    levels = {lvl: sum(1 for line in lines if lvl in line) for lvl in ("ERROR", "WARN")}
    summary = explore_text(text)
    counts = ", ".join(f"{k}: {v:,}" for k, v in levels.items() if v)
    return _cap([f"log, {counts}" if counts else "log", summary])


EXPLORERS: dict[str, Callable[[str], str]] = {
    "python": explore_python,
    "json": explore_json,
    "jsonl": explore_jsonl,
    "yaml": explore_yaml,
    "toml": explore_toml,
    "markdown": explore_markdown,
    "csv": explore_csv,
    "tsv": explore_tsv,
    "javascript": explore_javascript,
    "typescript": explore_typescript,
    "sql": explore_sql,
    "log": explore_log,
    "text": explore_text,
}


def explore(file_type: str, text: str) -> str:
    """The outline of a text file of ``file_type``."""
    return EXPLORERS.get(file_type, explore_text)(text)
