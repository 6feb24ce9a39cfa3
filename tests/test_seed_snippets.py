"""The getting-started page's snippets, run unchanged in mock mode.

Each snippet is the page's code as written; only the surrounding ``async def``
needed to run a top-level ``await`` is added.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

FIRST_SESSION = """
import asyncio
from mnesis import MnesisSession
async def main():
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6",
        system_prompt="You are a helpful assistant.",
    ) as session:
        result = await session.send("Explain the GIL in Python.")
        print(result.text)
        print(f"Tokens used: {result.tokens.effective_total()}")
asyncio.run(main())
"""

SNIPPETS = {
    "manual_lifecycle": """
async with await MnesisSession.create(
    model="anthropic/claude-opus-4-6",
    system_prompt="You are a helpful assistant.",
) as session:
    result = await session.send("Explain the GIL in Python.")
    print(result.text)
# Or without a context manager — you are responsible for calling close():
session = await MnesisSession.create(model="anthropic/claude-opus-4-6")
result = await session.send("Explain the GIL in Python.")
await session.close()
""",
    "multi_turn": """
async with MnesisSession.open(model="anthropic/claude-opus-4-6") as session:
    await session.send("My name is Alice.")
    await session.send("What's my name?") # model still knows: Alice
    await session.send("Write a poem about context management.")
""",
    "resume": """
# First run — save the session ID
session = await MnesisSession.create(model="anthropic/claude-opus-4-6")
session_id = session.id
await session.send("Remember: the secret code is 42.")
await session.close()
# Later — resume it
session = await MnesisSession.load(session_id)
result = await session.send("What was the secret code?")
print(result.text) # "The secret code is 42."
await session.close()
""",
    "monitoring": """
async with MnesisSession.open(model="anthropic/claude-opus-4-6") as session:
    result = await session.send("...")
    if result.compaction_triggered:
        print("Compaction ran in the background — context is fresh again.")
    from mnesis.events.bus import MnesisEvent
    session.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: print("Compacted!", p))
""",
    "streaming": """
async with MnesisSession.open(model="anthropic/claude-opus-4-6") as session:
    async for event in session.stream("Explain the GIL in Python."):
        if event.type == "text_delta":
            print(event.text, end="", flush=True)
        elif event.type == "turn_complete":
            print() # newline after streaming ends
            print(f"Tokens: {event.result.tokens.effective_total()}")
""",
    "abandonment": """
async with MnesisSession.open(model="anthropic/claude-opus-4-6") as session:
    # Safe to break early — the turn is still persisted
    async for event in session.stream("Long response..."):
        if event.type == "text_delta" and "stop" in event.text:
            break # stop reading, but send() finishes in background
""",
}


@pytest.fixture
def mock_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNESIS_MOCK_LLM", "1")


def test_first_session_snippet_runs_unchanged(
    mock_mode: None, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exec(compile(FIRST_SESSION, "first_session", "exec"), {"__name__": "snippet"})
    out = capsys.readouterr().out
    assert "Tokens used: " in out
    assert int(out.rsplit("Tokens used: ", 1)[1].strip()) > 0
    db = isolated_home / ".mnesis" / "sessions.db"
    assert db.exists()
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert oct(db.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_page_snippet_runs_unchanged(
    name: str, mock_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    body = textwrap.indent(SNIPPETS[name], "    ")
    source = f"from mnesis import MnesisSession\nasync def main():\n{body}\n"
    namespace: dict[str, object] = {}
    exec(compile(source, name, "exec"), namespace)
    asyncio.run(namespace["main"]())  # type: ignore[operator]
    out = capsys.readouterr().out
    if name == "streaming":
        assert "Tokens: " in out


def test_resumed_session_sees_its_history(mock_mode: None, isolated_home: Path) -> None:
    async def run() -> int:
        from mnesis import MnesisSession

        session = await MnesisSession.create(model="anthropic/claude-opus-4-6")
        await session.send("Remember: the secret code is 42.")
        await session.close()
        resumed = await MnesisSession.load(session.id)
        context = await resumed.context_for_next_turn()
        await resumed.close()
        return [m["role"] for m in context if "secret code is 42" in str(m["content"])]

    # The user's message, and the mock's echo of it in its reply.
    assert asyncio.run(run()) == ["user", "assistant"]
