"""``mnesis demo`` and ``mnesis chat``: the commands a person watches."""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from mnesis import (
    MnesisConfig,
    MnesisEvent,
    MnesisSession,
    MockProvider,
    MockReply,
    SessionNotFoundError,
)
from mnesis.llm import mock_mode
from mnesis.llm.base import LLMRequest

out = Console(highlight=False, soft_wrap=True)

DEMO_FACT = "Remember this for later: the launch code is ZEBRA-4471."
TOPICS = [
    "the GIL",
    "async IO",
    "SQLite WAL mode",
    "prompt caching",
    "token budgets",
    "summaries",
    "tool calls",
    "vector clocks",
    "B-trees",
    "backpressure",
]
WORDS = (
    "context memory window token summary store engine turn history message model budget "
    "session durable recall detail answer reason plan step result note fact record"
).split()


def demo_model(request: LLMRequest) -> MockReply:
    """Answers in a few sentences; summarises by keeping the first line of each turn."""
    content = str(request.messages[-1].get("content") or "")
    if "<transcript>" in content:
        lines = content.split("<transcript>")[-1].splitlines()
        heads = [
            f"{line} {lines[i + 1][:70]}"
            for i, line in enumerate(lines[:-1])
            if line.startswith("[#")
        ]
        return MockReply(text="## Completed\n" + "\n".join(f"- {h}" for h in heads[:8]))
    rng = random.Random(content)
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    return MockReply(text=f"On {content[:60]!r}: {body}.")


async def cmd_demo(args: argparse.Namespace) -> int:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 8_000, "max_output_tokens": 1_000},
            "compaction": {"compaction_output_budget": 1_000},
        }
    )
    passes: list[dict[str, Any]] = []
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6",
        config=config,
        db_path=args.db,
        provider=MockProvider(demo_model),
        system_prompt="You are a helpful assistant.",
    ) as session:
        session.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: passes.append(p))
        out.print(
            f"[bold]session[/bold] {session.id} · window {session.usable_tokens:,} "
            f"usable tokens, compaction starts at 60%",
            markup=True,
        )
        out.print(f"[bold]turn 1[/bold] user: {DEMO_FACT}", markup=True)
        async for event in session.stream(DEMO_FACT):
            if event.type == "text_delta":
                out.print(event.text, end="", markup=False)
        out.print()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} turns"),
            console=out,
            transient=False,
            disable=args.json,
        ) as progress:
            task = progress.add_task("talking", total=args.turns)
            for turn in range(2, args.turns + 1):
                topic = TOPICS[turn % len(TOPICS)]
                await session.send(f"Turn {turn}: tell me one more thing about {topic}.")
                progress.advance(task)
            progress.advance(task)
        await session.compact()
        for p in passes[:3]:
            out.print(
                f"compaction: {p['tokens_before']:,} → {p['tokens_after']:,} tokens "
                f"(level {p['level_used']}, {p['compacted_message_count']} messages "
                f"summarised, {p['elapsed_ms']:.0f} ms)"
            )
        if len(passes) > 3:
            out.print(f"... {len(passes)} compaction passes in all")
        context = await session.context_for_next_turn()
        summary = next(
            (m["content"] for m in context if str(m["content"]).startswith("[Summary ")), None
        )
        breakdown = await session.context_breakdown()
        out.print(
            f"\n[bold]context now[/bold]: {len(context)} messages, "
            f"{breakdown.total:,} tokens (summaries {breakdown.summary:,})",
            markup=True,
        )
        if summary:
            out.print("[bold]first summary in the context:[/bold]", markup=True)
            out.print("  " + summary[:600].replace("\n", "\n  "), markup=False)
        in_context = any(
            "ZEBRA-4471" in str(m["content"]) and not str(m["content"]).startswith("[Summary ")
            for m in context
        )
        out.print(f"\nis turn 1 still verbatim in the context? {'yes' if in_context else 'no'}")
        found = await session.grep("launch code")
        match = found.matches[0]
        out.print(
            f"[bold]grep 'launch code'[/bold] → {match.message_id} (#{match.seq}), "
            f"covered by {match.summary_id or 'nothing (verbatim)'}",
            markup=True,
        )
        if match.summary_id:
            page = await session.expand(match.summary_id, limit=1)
            original = page.messages[0].text_content()
            out.print(
                f"[bold]expand {match.summary_id}[/bold] → {escape(repr(original))}", markup=True
            )
        problems = await session.verify()
        info = await session.info()
        out.print(
            f"\n{info.messages} messages stored, none lost; store invariants: "
            f"{'ok' if not problems else problems}"
        )
        out.print(f"inspect it: mnesis show {session.id}" + (f" --db {args.db}" if args.db else ""))
    return 0 if not problems else 1


def _has_key(model: str) -> bool:
    from mnesis.llm.litellm import import_litellm

    try:
        checked = import_litellm().validate_environment(model=model)
    except Exception:
        return False
    return bool(checked.get("keys_in_environment"))


async def cmd_chat(args: argparse.Namespace) -> int:
    model = args.model
    if args.session_id:
        known = {s.id: s.model for s in await MnesisSession.list_sessions(db_path=args.db)}
        if args.session_id not in known:
            raise SessionNotFoundError(args.session_id)
        model = known[args.session_id]
    provider = None
    if mock_mode():
        provider = MockProvider(chunks=8)
        out.print("[yellow]MNESIS_MOCK_LLM is set: using the mock model[/yellow]", markup=True)
    elif not _has_key(model):
        provider = MockProvider(chunks=8)
        out.print(
            f"[yellow]no API key found for {escape(model)}: using the mock model "
            "(set the provider's key to talk to the real one)[/yellow]",
            markup=True,
        )
    if args.session_id:
        session = await MnesisSession.load(args.session_id, db_path=args.db, provider=provider)
    else:
        session = await MnesisSession.create(model=model, db_path=args.db, provider=provider)
    out.print(f"session {session.id} · /compact /grep P /expand ID /history /context /pin ID /exit")
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, "> ")
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not await _slash(session, line):
                    break
                continue
            async for event in session.stream(line):
                if event.type == "text_delta":
                    out.print(event.text, end="", markup=False)
                else:
                    out.print(
                        f"\n[dim]{event.result.tokens.effective_total():,} tokens[/dim]",
                        markup=True,
                    )
    finally:
        await session.close()
    return 0


async def _slash(session: MnesisSession, line: str) -> bool:
    command, _, arg = line.partition(" ")
    arg = arg.strip()
    try:
        if command == "/exit":
            return False
        if command == "/compact":
            result = await session.compact()
            if result.level_used == 0 and not result.pruned_tool_outputs:
                out.print("nothing to compact yet")
            else:
                out.print(
                    f"compacted: {result.tokens_before:,} → {result.tokens_after:,} "
                    f"tokens (level {result.level_used})"
                )
        elif command == "/grep" and arg:
            for match in await session.grep(arg):
                out.print(
                    f"#{match.seq} {match.message_id} "
                    f"[{match.summary_id or 'verbatim'}] {match.snippet}",
                    markup=False,
                )
        elif command == "/expand" and arg:
            for message in (await session.expand(arg)).messages:
                out.print(
                    f"#{message.message.seq} {message.role}: {message.text_content()}", markup=False
                )
        elif command == "/history":
            for snap in await session.history():
                out.print(
                    f"turn {snap.turn_index}: {snap.context_tokens.total:,} tokens"
                    + (" (compaction)" if snap.compaction_triggered else "")
                )
        elif command == "/context":
            for chat in await session.context_for_next_turn(include_system=True):
                out.print(f"{chat['role']}: {str(chat.get('content'))[:200]}", markup=False)
        elif command == "/pin" and arg:
            await session.pin(arg)
            out.print(f"pinned {arg}")
        else:
            out.print("commands: /compact /grep PATTERN /expand ID /history /context /pin ID /exit")
    except ValueError as exc:
        out.print(f"error: {exc}", markup=False)
    return True
