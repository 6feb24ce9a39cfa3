"""A small stored session whose shape the web tests know turn by turn."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mnesis import MnesisConfig, MnesisSession, MockProvider, ToolPart
from mnesis.llm.base import LLMRequest
from mnesis.store import SQLiteStore
from mnesis.store.base import PRUNED_MARKER

MODEL = "openai/gpt-4o-mini"
ARTIFACTS = Path(__file__).parent / "artifacts"
VOCAB = "river stone lamp orbit cedar pixel quartz maple ember delta harbor signal".split()


def summariser(request: LLMRequest) -> str:
    content = str(request.messages[-1]["content"])
    if "<transcript>" in content:
        return (
            "Goal: plan the harbor survey.\nDiscoveries: the user named the lighthouse "
            "keeper and asked for tide tables.\nIn progress: reading the tide tool's output."
        )
    return "noted"


def config() -> MnesisConfig:
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 6_000, "max_output_tokens": 500},
            "compaction": {"compaction_output_budget": 500, "auto": False},
        }
    )


@dataclass
class Built:
    """What the tests check the page against."""

    session_id: str
    compacted_after: list[int] = field(default_factory=list)
    needle_turn: int = 0
    pinned_id: str = ""


async def build_session(
    db_path: str, *, turns: int = 12, compact_after: tuple[int, ...] = (5, 9)
) -> Built:
    """A session of ``turns`` recorded turns with tool calls, a pin, and compaction
    passes right after the turns in ``compact_after``; turn 3 says "Zebra-9431"."""
    rng = random.Random(7)
    async with MnesisSession.open(
        model=MODEL,
        config=config(),
        db_path=db_path,
        provider=MockProvider(summariser),
        system_prompt="You are a careful harbor-survey assistant.",
    ) as session:
        built = Built(session.id)
        for turn in range(1, turns + 1):
            words = " ".join(rng.choice(VOCAB) for _ in range(60))
            user = f"Turn {turn}: {words}"
            if turn == 3:
                user = "The lighthouse keeper's code is Zebra-9431, remember it."
                built.needle_turn = 3
            reply: str | list = f"Reply {turn}: " + " ".join(rng.choice(VOCAB) for _ in range(30))
            if turn % 4 == 2:
                reply = [
                    ToolPart(
                        tool_name="tide_table",
                        tool_call_id=f"call_{turn}",
                        input={"harbor": "north", "day": turn},
                        output="high 06:12, low 12:40 " * 20,
                        status="completed",
                    ),
                ]
            result = await session.record(user, reply)
            if turn == turns - 1:
                await session.pin(result.user_message_id)
                built.pinned_id = result.user_message_id
            if turn in compact_after:
                await session.compact()
                built.compacted_after.append(turn)
        return built


@dataclass
class Compacting:
    """A session that pruned and summarised several times, and what its context view
    held after each turn (read from the store then, compaction done): the
    summaries in it and the tool calls whose outputs were tombstoned."""

    session_id: str
    summaries_after: dict[int, list[str]] = field(default_factory=dict)
    pruned_after: dict[int, list[str]] = field(default_factory=dict)


async def build_compacting_session(db_path: str, *, turns: int = 24) -> Compacting:
    """Automatic compaction on; every third reply is a tool call with a long output,
    so early passes only prune old outputs and later ones summarise too."""
    rng = random.Random(11)
    settings = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 6_000, "max_output_tokens": 500},
            "compaction": {
                "compaction_output_budget": 500,
                "prune_protect_tokens": 300,
                "prune_minimum_tokens": 100,
            },
        }
    )
    async with MnesisSession.open(
        model=MODEL,
        config=settings,
        db_path=db_path,
        provider=MockProvider(summariser),
        system_prompt="You are a careful harbor-survey assistant.",
    ) as session:
        built = Compacting(session.id)
        watcher = await SQLiteStore(db_path).open()
        try:
            for turn in range(1, turns + 1):
                user = f"Turn {turn}: " + " ".join(rng.choice(VOCAB) for _ in range(40))
                reply: str | list = f"Reply {turn}: " + " ".join(
                    rng.choice(VOCAB) for _ in range(20)
                )
                if turn % 3 == 0:
                    reply = [
                        ToolPart(
                            tool_name="sounding",
                            tool_call_id=f"sound_{turn}",
                            input={"turn": turn},
                            output=f"depth log {turn}: " + "fathoms 12, " * 150,
                            status="completed",
                        )
                    ]
                await session.record(user, reply)
                await session.wait_for_compaction()
                _, view = await watcher.context_entries(session.id)
                built.summaries_after[turn] = [e.ref_id for e in view if e.summary is not None]
                built.pruned_after[turn] = [
                    p.tool_call_id
                    for e in view
                    for p in e.parts
                    if isinstance(p, ToolPart) and p.output == PRUNED_MARKER
                ]
        finally:
            await watcher.close()
        return built


def artifact(name: str) -> str:
    """Where a screenshot goes (kept after the run for a person to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    print(f"screenshot: {path}")
    return str(path)


async def http_get(url: str, method: str = "GET") -> tuple[int, bytes]:
    """A raw request, so the status is what the server said (no client retries)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body
