"""Property tests: whatever happens, the context fits, ends with the latest turn,
pairs every tool call with its result, and the store's invariants hold."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnesis import MnesisConfig, MnesisSession, MockProvider, ToolPart
from mnesis.errors import LLMError, LLMTransientError
from mnesis.llm.base import LLMRequest
from mnesis.llm.mock import MockReply, MockToolCall
from mnesis.models.message import ToolStatus
from mnesis.tokens import TokenEstimator

MODEL = "openai/gpt-4o"
ESTIMATOR = TokenEstimator(MODEL)

op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 400)),
    st.tuples(st.just("record"), st.integers(1, 400)),
    st.tuples(st.just("record_tool"), st.integers(1, 900)),
    st.tuples(st.just("send_tool"), st.integers(1, 600)),
    st.tuples(st.just("fail"), st.integers(1, 50)),
    st.tuples(st.just("compact"), st.just(0)),
)


def words(n: int, seed: int) -> str:
    vocab = ["river", "stone", "lamp", "orbit", "cedar", "pixel", "quartz", "maple", "ember"]
    return " ".join(vocab[(seed * 7 + i * 3) % len(vocab)] for i in range(n))


def request_tokens(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += ESTIMATOR.estimate(str(message.get("content") or "")) + 4
        for call in message.get("tool_calls") or []:
            total += ESTIMATOR.estimate(call["function"]["arguments"]) + 12
    return total


def assert_paired(messages: list[dict[str, Any]]) -> None:
    for i, message in enumerate(messages):
        if message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            following = messages[i + 1 : i + 1 + len(ids)]
            assert [m.get("tool_call_id") for m in following] == ids
        if message["role"] == "tool":
            assert messages[i - 1]["role"] in ("assistant", "tool")


class Scripted:
    """A model that answers, calls a tool on request, fails on request, summarises."""

    def __init__(self) -> None:
        self.fail_next = False
        self.tool_next: int | None = None

    def __call__(self, request: LLMRequest) -> MockReply:
        content = str(request.messages[-1].get("content") or "")
        if "<transcript>" in content:
            return MockReply(text="Summary of the earlier conversation.")
        if self.fail_next:
            self.fail_next = False
            raise LLMTransientError("provider dropped the connection")
        if self.tool_next is not None and request.tools:
            size, self.tool_next = self.tool_next, None
            return MockReply(tool_calls=(MockToolCall("lookup", {"n": size}),))
        return MockReply(text=words(30, len(content)))


async def run_ops(ops: list[tuple[str, int]], folder: Path) -> None:
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 6_000, "max_output_tokens": 500},
            "compaction": {
                "compaction_output_budget": 500,
                "prune_protect_tokens": 800,
                "prune_minimum_tokens": 200,
            },
        }
    )
    model = Scripted()
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    async with MnesisSession.open(
        model=MODEL, config=config, db_path=str(folder / "p.db"), provider=MockProvider(model)
    ) as session:
        expected_last: str | None = None
        for index, (kind, size) in enumerate(ops):
            text = words(size, index)
            if kind == "send":
                expected_last = (await session.send(text)).text
            elif kind == "record":
                await session.record(text, f"reply {index}")
                expected_last = f"reply {index}"
            elif kind == "record_tool":
                call = ToolPart(
                    tool_name="lookup",
                    tool_call_id=f"r{index}",
                    input={"q": index},
                    output=text,
                    status=ToolStatus.COMPLETED,
                )
                await session.record(f"look up {index}", [call])
                expected_last = text
            elif kind == "send_tool":
                model.tool_next = size
                result = await session.send(
                    f"use lookup {index}",
                    tools=[lookup],
                    tool_handlers={"lookup": lambda n: words(n, n)},
                )
                expected_last = result.text
                if result.doom_loop_detected:  # the repeated call was refused, not run
                    expected_last = (
                        "Error: not run: the same call was repeated 3 times in a row; "
                        "try something different"
                    )
            elif kind == "fail":
                model.fail_next = True
                try:
                    await session.send(text)
                except LLMError:
                    pass
            else:
                await session.compact()
            context = await session.context_for_next_turn()
            assert request_tokens(context) <= session.usable_tokens + 64
            assert_paired(context)
            last_text = next(
                (
                    str(m["content"])
                    for m in reversed(context)
                    if m["role"] in ("assistant", "tool") and m.get("content")
                ),
                None,
            )
            if expected_last is not None and kind != "fail" and last_text is not None:
                # The newest reply is the newest assistant content in the context,
                # unless a later failed turn moved it behind a summary (then it
                # must still be reachable through the log).
                assert last_text == expected_last or context[-1]["role"] == "user"
            if expected_last is not None:
                assert expected_last in [
                    t
                    for m in await session.messages()
                    for t in (
                        m.text_content(),
                        *(
                            p.output if p.output is not None else f"Error: {p.error_message}"
                            for p in m.tool_parts()
                        ),
                    )
                ]
        assert await session.verify() == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(op, min_size=1, max_size=45))
def test_any_sequence_of_turns_keeps_the_invariants(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run_ops(ops, Path(folder)))


def test_context_converts_to_valid_anthropic_messages(tmp_path: Path) -> None:
    """Anthropic needs every tool_use answered by a tool_result in the next user turn."""
    from litellm.litellm_core_utils.prompt_templates.factory import anthropic_messages_pt

    ops = [("record_tool", 700), ("send", 300), ("send_tool", 500), ("record", 300)] * 6
    ops += [("compact", 0), ("send_tool", 200), ("send", 50)]

    async def context_after() -> list[dict[str, Any]]:
        await run_ops(ops, tmp_path)
        session = await MnesisSession.load(
            (await _only_session(tmp_path / "p.db")),
            db_path=str(tmp_path / "p.db"),
            provider=MockProvider(Scripted()),
        )
        context = await session.context_for_next_turn()
        await session.close()
        return context

    context = asyncio.run(context_after())
    converted = anthropic_messages_pt(
        [m for m in context if m["role"] != "system"],
        model="claude-opus-4-6",
        llm_provider="anthropic",
    )
    roles = [m["role"] for m in converted]
    assert all(a != b for a, b in itertools.pairwise(roles))  # alternation
    for i, message in enumerate(converted):
        uses = [
            b["id"]
            for b in message["content"]
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        if uses:
            results = [
                b["tool_use_id"]
                for b in converted[i + 1]["content"]
                if isinstance(b, dict) and b.get("type") == "tool_result"
            ]
            assert results[: len(uses)] == uses


async def _only_session(db: Path) -> str:
    import sqlite3

    (session_id,) = sqlite3.connect(db).execute("SELECT id FROM sessions").fetchone()
    return str(session_id)
