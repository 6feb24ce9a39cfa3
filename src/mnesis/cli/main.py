"""The ``mnesis`` command: inspect, search and talk to stored sessions.

Uses only the public API. Every command takes ``--db PATH`` (default:
``$MNESIS_DB_URL``, then ``~/.mnesis/sessions.db``); errors are one line on
stderr and a non-zero exit code. Commands that read never create a database
and work without write access. Stored text is untrusted: in human output its
control characters are shown escaped (``\x1b``), so a message cannot drive
the reader's terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mnesis import (
    DatabaseNotFoundError,
    FileRefPart,
    MessageWithParts,
    MnesisError,
    MnesisSession,
    StoreConfig,
    TextPart,
    ToolPart,
    __version__,
)
from mnesis.models.info import SessionInfo
from mnesis.store import describe_location, is_postgres_url, migrate_040, resolve_db_url

# Piped output gets a wide console so tables are not cut at 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


# C0 and C1 controls (ESC, OSC, CSI, BEL, CR, DEL, ...) but newline and tab, as \xNN.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"}


def escape_controls(text: str) -> str:
    """``text`` with every control character but newline and tab escaped."""
    return text.translate(_CONTROLS)


def _in_markup(text: str) -> str:
    """``text`` fit to sit in rich markup: controls escaped, brackets too."""
    return escape(escape_controls(text))


def _error(text: str) -> None:
    print(escape_controls(text), file=sys.stderr)


# json.dumps escapes C0 controls itself; DEL and C1 (CSI is \x9b) only with ensure_ascii.
_JSON_CONTROLS = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def _json_text(data: Any) -> str:
    """``data`` as readable JSON (non-ASCII kept) with no raw control character."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str).translate(_JSON_CONTROLS)


def _dump(data: Any) -> None:
    print(_json_text(data))


async def _load(args: argparse.Namespace) -> MnesisSession:
    return await MnesisSession.load(args.session_id, db_path=args.db)


def _part_lines(part: Any) -> list[str]:
    return [escape_controls(line) for line in _raw_part_lines(part)]


def _raw_part_lines(part: Any) -> list[str]:
    if isinstance(part, TextPart):
        return [part.text]
    if isinstance(part, FileRefPart):
        return [f"[FILE {part.content_id} {part.path} ({part.file_type}, {part.token_count} tok)]"]
    if isinstance(part, ToolPart):
        lines = [f"→ {part.tool_name}({json.dumps(part.input, ensure_ascii=False)})"]
        if part.output is not None:
            lines.append(f"← {part.output}")
        elif part.error_message is not None:
            lines.append(f"← error: {part.error_message}")
        else:
            lines.append("← (no result yet)")
        if part.pruned:
            lines.append("  [tombstone: this output is pruned from the context]")
        return lines
    return [str(part)]


def _message_json(message: MessageWithParts, summary_id: str | None) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    data["summary_id"] = summary_id
    return data


# -- commands ----------------------------------------------------------------


async def _stored_sessions(db: str | None) -> list[SessionInfo]:
    """The sessions of a database that exists: for a command, a missing one is a
    mistyped path, not an empty list."""
    url = resolve_db_url(db, StoreConfig())
    path, size = await asyncio.to_thread(describe_location, url)
    if size is None and not is_postgres_url(url):
        raise DatabaseNotFoundError(path)
    return await MnesisSession.list_sessions(db_path=db)


async def cmd_sessions(args: argparse.Namespace) -> int:
    sessions = await _stored_sessions(args.db)
    if args.json:
        _dump([s.model_dump(mode="json") for s in sessions])
        return 0
    table = Table("id", "model", "created", "turns", "messages", "tokens", "summaries")
    for s in sessions:
        table.add_row(
            escape_controls(s.id),
            escape_controls(s.model),
            s.created_at.strftime("%Y-%m-%d %H:%M"),
            str(s.turns),
            str(s.messages),
            f"{s.tokens.effective_total():,}",
            str(s.summaries),
        )
    out.print(table if sessions else "no sessions")
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    session = await _load(args)
    try:
        messages = await session.conversation_messages()
        covered = await session.covering_summaries([m.id for m in messages])
        if args.json:
            _dump([_message_json(m, covered.get(m.id)) for m in messages])
            return 0
        for message in messages:
            meta = message.message
            marks = []
            if message.id in covered:
                marks.append(f"summarised in {covered[message.id]}")
            if meta.status != "complete":
                marks.append(f"{meta.status}: {meta.error}")
            suffix = _in_markup(f"  [{'; '.join(marks)}]") if marks else ""
            out.print(
                f"[bold]#{meta.seq} {meta.role}[/bold] {_in_markup(message.id)}{suffix}",
                markup=True,
            )
            for part in message.parts:
                for line in _part_lines(part):
                    out.print("  " + line, markup=False)
        return 0
    finally:
        await session.close()


async def cmd_context(args: argparse.Namespace) -> int:
    session = await _load(args)
    try:
        messages = await session.context_for_next_turn(include_system=True)
        breakdown = await session.context_breakdown()
        if args.json:
            _dump(
                {
                    "messages": messages,
                    "tokens": breakdown.model_dump(),
                    "usable_tokens": session.usable_tokens,
                }
            )
            return 0
        for message in messages:
            content = message.get("content")
            out.print(f"[bold]{message['role']}[/bold]", markup=True)
            if content:
                out.print("  " + escape_controls(str(content)).replace("\n", "\n  "), markup=False)
            for call in message.get("tool_calls") or []:
                fn = call["function"]
                shown = escape_controls(f"{fn['name']}({fn['arguments']}) [{call['id']}]")
                out.print(f"  → {shown}", markup=False)
        out.print(
            f"\ntokens: system {breakdown.system_prompt:,} · summaries {breakdown.summary:,} · "
            f"messages {breakdown.messages:,} · tool outputs {breakdown.tool_outputs:,} · "
            f"total {breakdown.total:,} of {session.usable_tokens:,} usable"
        )
        return 0
    finally:
        await session.close()


def _print_matches(
    rows: Sequence[tuple[str, str, str, str, str, str]], next_offset: int | None
) -> None:
    """grep's and search's matches: ``(heading, id, session, summary id, snippet, how)``."""
    for heading, ident, session, summary_id, snippet, how in rows:
        where = f"in {summary_id}" if summary_id else "verbatim in context"
        out.print(
            f"[bold]{heading}[/bold] {_in_markup(ident)} "
            f"({_in_markup(session + where)}{how})",
            markup=True,
        )
        out.print("  " + escape_controls(snippet), markup=False)
    if not rows:
        out.print("no matches")
    if next_offset is not None:
        out.print(f"more: --offset {next_offset}")


async def cmd_grep(args: argparse.Namespace) -> int:
    session = await _load(args)
    try:
        result = await session.grep(
            args.pattern,
            regex=args.regex,
            limit=args.limit,
            offset=args.offset,
            summary_id=args.summary,
        )
        if args.json:
            _dump(result.model_dump(mode="json"))
            return 0
        _print_matches(
            [
                (f"#{m.seq} {m.role}", m.message_id, "", m.summary_id or "", m.snippet, "")
                for m in result
            ],
            result.next_offset,
        )
        if not result.complete:
            out.print("(the regex scan stopped at its time budget; results are partial)")
        return 0
    finally:
        await session.close()


async def cmd_search(args: argparse.Namespace) -> int:
    from mnesis import search

    result = await search(
        args.query,
        args.session or None,
        limit=args.limit,
        offset=args.offset,
        db_path=args.db,
        embed_backlog=args.embed,
    )
    if args.json:
        _dump(result.model_dump(mode="json"))
        return 0
    _print_matches(
        [
            (
                f"{m.score:.4f} #{m.seq} {m.role}",
                m.id,
                f"{m.session_id}, ",
                m.summary_id or "",
                m.snippet,
                f", by {m.matched_by}",
            )
            for m in result
        ],
        result.next_offset,
    )
    if not result.semantic:
        out.print("(words only: pip install 'mnesis[semantic]' for meaning-based recall)")
    return 0


async def cmd_expand(args: argparse.Namespace) -> int:
    session = await _load(args)
    try:
        page = await session.expand(args.summary_id, limit=args.limit, offset=args.offset)
        if args.json:
            _dump(page.model_dump(mode="json"))
            return 0
        for message in page.messages:
            out.print(
                f"[bold]#{message.message.seq} {message.role}[/bold] {_in_markup(message.id)}",
                markup=True,
            )
            for part in message.parts:
                for line in _part_lines(part):
                    out.print("  " + line, markup=False)
        if page.next_offset is not None:
            out.print(f"more: --offset {page.next_offset} ({page.total} in all)")
        return 0
    finally:
        await session.close()


async def cmd_export(args: argparse.Namespace) -> int:
    if args.html or args.format == "html":
        return await _export_html(args)
    session = await _load(args)
    try:
        messages = await session.conversation_messages()
        covered = await session.covering_summaries([m.id for m in messages])
        info = await session.info()
        if args.format == "json":
            text = _json_text(
                {
                    "session": info.model_dump(mode="json"),
                    "system_prompt": session.system_prompt,
                    "messages": [_message_json(m, covered.get(m.id)) for m in messages],
                }
            )
        else:
            lines = [
                f"# Session {info.id}",
                "",
                f"- model: {info.model}",
                f"- created: {info.created_at.isoformat()}",
                f"- turns: {info.turns}",
                "",
                f"> system: {session.system_prompt}",
                "",
            ]
            for message in messages:
                lines.append(f"## #{message.message.seq} {message.role} ({message.id})")
                if message.id in covered:
                    lines.append(f"*summarised in the context by {covered[message.id]}*")
                lines.append("")
                for part in message.parts:
                    lines += _part_lines(part)
                lines.append("")
            text = "\n".join(lines)
        if args.output:
            await asyncio.to_thread(_write_private, args.output, text)
            _error(f"wrote {args.output}")
        else:
            print(text)
        return 0
    finally:
        await session.close()


async def _export_html(args: argparse.Namespace) -> int:
    from mnesis.web import Inspector, export_html, open_store

    store = await open_store(args.db)
    try:
        text = await export_html(Inspector(store), args.session_id)
    finally:
        await store.close()
    output = args.output or f"{args.session_id}.html"
    await asyncio.to_thread(_write_private, output, text)
    _error(f"wrote {output}")
    return 0


async def cmd_serve(args: argparse.Namespace) -> int:
    from mnesis.web import serve

    def ready(url: str) -> None:
        out.print(f"mnesis inspector (read-only) on {escape_controls(url)}", markup=False)
        out.print("Open that URL (the token in it is needed); Ctrl+C stops.", markup=False)

    await serve(args.db, host=args.host, port=args.port, ready=ready)
    return 0


def _write_private(path: str, text: str) -> None:
    """Exports hold the conversation: owner-only, like the database."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _database_file(db: str | None) -> tuple[str, int | None]:
    return describe_location(resolve_db_url(db, StoreConfig()))


async def cmd_stats(args: argparse.Namespace) -> int:
    sessions = await _stored_sessions(args.db)
    path, size = await asyncio.to_thread(_database_file, args.db)
    data = {
        "database": path,
        "size_bytes": size,
        "sessions": len(sessions),
        "messages": sum(s.messages for s in sessions),
        "turns": sum(s.turns for s in sessions),
        "summaries": sum(s.summaries for s in sessions),
        "tokens": sum(s.tokens.effective_total() for s in sessions),
        "cost_usd": round(sum(s.cost for s in sessions), 6),
    }
    if args.json:
        _dump(data)
    else:
        for key, value in data.items():
            out.print(f"{key:>11}: {value:,}" if isinstance(value, int) else f"{key:>11}: {value}")
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    session = await _load(args)
    try:
        problems = await session.verify()
    finally:
        await session.close()
    if args.json:
        _dump({"session_id": args.session_id, "ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            _error(problem)
    else:
        out.print(f"{args.session_id}: ok")
    return 1 if problems else 0


async def cmd_migrate(args: argparse.Namespace) -> int:
    report = await migrate_040(args.path, dry_run=args.dry_run)
    if args.json:
        data = {"path": report.path, "migrated": report.migrated, "dry_run": report.dry_run}
        if report.migrated:
            data |= {
                "sessions": report.sessions,
                "messages": report.messages,
                "parts": report.parts,
                "summaries": report.summaries,
                "file_refs": report.file_refs,
                "unshown_parts": report.unshown_parts,
                "orphan_summaries": report.orphan_summaries,
                "restored_messages": report.restored_messages,
                "backup": report.backup,
            }
        _dump(data)
        return 0
    path = _in_markup(report.path)
    if not report.migrated:
        out.print(f"{path} is a mnesis database already: nothing to migrate")
        return 0
    counts = (
        f"{report.sessions} sessions, {report.messages} messages, {report.parts} parts, "
        f"{report.summaries} summaries, {report.file_refs} file references"
    )
    if report.dry_run:
        out.print(f"{path} is a mnesis 0.4.0 database. Migrating it would carry over {counts}.")
        out.print(f"It would first be copied to {_in_markup(report.backup or '')}.")
    else:
        out.print(f"migrated {path} from mnesis 0.4.0: {counts}.")
        out.print(f"The original is kept as {_in_markup(report.backup or '')}.")
    notes = (
        (report.unshown_parts, "parts 0.4.0 never showed the model (step markers, patches)"),
        (report.orphan_summaries, "summaries its context no longer reached"),
    )
    for count, what in notes:
        if count:
            kept = "would stay" if report.dry_run else "stay"
            out.print(f"{count} {what} {kept} only in its mnesis040_* tables.")
    if report.restored_messages:
        out.print(
            f"{report.restored_messages} messages that were in neither its context nor a "
            "summary are back in the context."
        )
    if report.dry_run:
        out.print("Nothing was changed (dry run).")
    return 0


async def cmd_mcp(args: argparse.Namespace) -> int:
    from mnesis.integrations.mcp_server import serve_stdio  # needs mnesis[mcp]

    await serve_stdio(args.db, max_chars=args.max_chars)
    return 0


# -- parser ------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from mnesis.cli.interactive import cmd_chat, cmd_demo

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=None,
        help="database file or URL (default: $MNESIS_DB_URL, ~/.mnesis/sessions.db)",
    )
    parser = argparse.ArgumentParser(prog="mnesis", description="Lossless memory for LLM apps.")
    parser.add_argument("--version", action="version", version=f"mnesis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], Awaitable[int]],
        text: str,
        *,
        json_output: bool = True,
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=text, description=text)
        command.set_defaults(handler=handler, json=False)
        if json_output:
            command.add_argument("--json", action="store_true", help="print JSON for scripts")
        return command

    demo = add("demo", cmd_demo, "a long scripted session with the mock model (no key needed)")
    demo.add_argument("--turns", type=int, default=120)
    chat = add("chat", cmd_chat, "talk to a model; replies stream live", json_output=False)
    chat.add_argument("--model", default="anthropic/claude-opus-4-6")
    chat.add_argument("--session", dest="session_id", default=None, help="resume this session")
    add("sessions", cmd_sessions, "list stored sessions")
    for name, handler, text in (
        ("show", cmd_show, "a session's whole transcript, summaries and tombstones marked"),
        ("context", cmd_context, "exactly what the model would receive next, with tokens"),
        ("verify", cmd_verify, "re-derive a session's store invariants"),
    ):
        add(name, handler, text).add_argument("session_id")
    grep = add("grep", cmd_grep, "search a session's whole stored history")
    grep.add_argument("session_id")
    grep.add_argument("pattern")
    grep.add_argument("--regex", action="store_true")
    grep.add_argument("--limit", type=int, default=20)
    grep.add_argument("--offset", type=int, default=0)
    grep.add_argument("--summary", default=None, help="only under this summary id")
    search = add("search", cmd_search, "find what was said, by words and meaning")
    search.add_argument("query")
    search.add_argument("--session", action="append", help="only this session (repeatable)")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--offset", type=int, default=0)
    search.add_argument("--embed", action="store_true", help="embed what is missing first")
    expand = add("expand", cmd_expand, "the original messages under a summary")
    expand.add_argument("session_id")
    expand.add_argument("summary_id")
    expand.add_argument("--limit", type=int, default=None)
    expand.add_argument("--offset", type=int, default=0)
    export = add("export", cmd_export, "write a session out as JSON or Markdown", json_output=False)
    export.add_argument("session_id")
    export.add_argument("--format", choices=["json", "markdown", "html"], default="markdown")
    export.add_argument(
        "--html", action="store_true", help="one self-contained page (default file: ID.html)"
    )
    export.add_argument("--output", "-o", default=None)
    serve = add("serve", cmd_serve, "a local, read-only web inspector", json_output=False)
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("stats", cmd_stats, "totals for the whole database")
    migrate = add("migrate", cmd_migrate, "migrate a mnesis 0.4.0 database in place")
    migrate.add_argument("path", help="the 0.4.0 database file (e.g. ~/.mnesis/sessions.db)")
    migrate.add_argument(
        "--dry-run", action="store_true", help="report what would be carried over; change nothing"
    )
    mcp = add("mcp", cmd_mcp, "serve memory tools to an MCP client (stdio)", json_output=False)
    mcp.add_argument("--max-chars", type=int, default=12_000, help="cap on one tool output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mnesis`` console script."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    warnings.filterwarnings("ignore", message="mnesis: model")
    try:
        code: int = asyncio.run(args.handler(args))
    except BrokenPipeError:  # e.g. `mnesis export ID | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 0
    except (MnesisError, OSError) as exc:
        _error(f"mnesis: error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
