"""MnesisHistory under pydantic-ai's own Agent, with its FunctionModel.

The model is pydantic-ai's ``FunctionModel`` driven by a script written here,
so the agent graph, tool execution and the history-processor capability are
pydantic-ai's real code. Tests that store run on SQLite and on PostgreSQL (a
fresh database each; with ``CI=true`` an unreachable server fails).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.messages import (
    ImageUrl,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.errors import InvalidInputError
from mnesis.events.bus import MnesisEvent
from mnesis.integrations.pydantic_ai import MARK, MnesisHistory
from mnesis.llm.base import LLMRequest
from mnesis.tokens import TokenEstimator

MODEL = "openai/gpt-4o"
CITIES = "Paris Lima Oslo Quito Hanoi Dakar Perth Bern".split()


def small_config() -> MnesisConfig:
    """A 4,000-token window: 3,000 usable, compaction from 1,800."""
    return MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
            "compaction": {
                "compaction_output_budget": 500,
                "prune_minimum_tokens": 100,
                "prune_protect_tokens": 400,
            },
        }
    )


def summariser(request: LLMRequest) -> str:
    content = str(request.messages[-1]["content"])
    runs = re.findall(r"run (\d+)", content)
    return f"Summary: weather questions from run {runs[0] if runs else '?'} on, all answered."


def forecast(city: str) -> str:
    return f"{city}: 18 C and dry"


class Script:
    """The model: calls ``weather`` when the prompt names a city, answers from
    the tool's return, else says ``Noted.``; records each request's messages."""

    def __init__(self) -> None:
        self.inputs: list[list[ModelMessage]] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.inputs.append(list(messages))
        usage = RequestUsage(input_tokens=200, output_tokens=20)
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            return ModelResponse(parts=[TextPart(f"Answer: {last.content}")], usage=usage)
        text = str(getattr(last, "content", ""))
        city = next((c for c in CITIES if c in text), None)
        if city is None:
            return ModelResponse(parts=[TextPart("Noted.")], usage=usage)
        call = ToolCallPart("weather", {"city": city}, tool_call_id="c_" + secrets.token_hex(4))
        return ModelResponse(parts=[TextPart("Let me check."), call], usage=usage)


def make_agent(script: Script, capability: Any) -> Agent[None, str]:
    agent = Agent(FunctionModel(script), capabilities=[capability], instructions="Be brief.")

    @agent.tool_plain
    def weather(city: str) -> str:
        """The weather in a city."""
        return forecast(city)

    return agent


@pytest.fixture
def db(db_url: str) -> str:
    """An SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    return db_url



def history(db: str, session_id: str = "chat-1", **kwargs: Any) -> MnesisHistory:
    return MnesisHistory(
        session_id, model=MODEL, db_path=db, provider=MockProvider(summariser), **kwargs
    )


async def stored_texts(memory: MnesisHistory) -> list[tuple[str, str]]:
    session = await memory.mnesis_session()
    return [(m.role, m.text_content()) for m in await session.conversation_messages()]


def assert_calls_answered(messages: list[ModelMessage]) -> None:
    """Every tool call is answered in the request right after its response."""
    for i, message in enumerate(messages):
        if isinstance(message, ModelResponse):
            ids = {p.tool_call_id for p in message.parts if isinstance(p, ToolCallPart)}
            if ids:
                answered = {
                    p.tool_call_id for p in messages[i + 1].parts if isinstance(p, ToolReturnPart)
                }
                assert ids <= answered


def content_tokens(estimator: TokenEstimator, messages: list[ModelMessage]) -> int:
    """Tokens of what a provider would send of ``messages``: texts, calls, returns."""
    texts: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                texts.append(part.tool_name + part.args_as_json_str())
            elif isinstance(getattr(part, "content", None), str):
                texts.append(part.content)  # type: ignore[union-attr]
    return sum(estimator.estimate_message(t) for t in texts)


# -- at length ------------------------------------------------------------------------------


async def test_long_conversation_with_tools_compacts_and_loses_nothing(tmp_path: Path) -> None:
    script = Script()
    compactions: list[object] = []
    estimator = TokenEstimator(MODEL)
    db = str(tmp_path / "long.db")
    async with history(db, "long", config=small_config()) as memory:
        session = await memory.mnesis_session()
        session.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: compactions.append(p))
        agent = make_agent(script, memory.capability())
        for run in range(1, 151):
            city = CITIES[run % len(CITIES)]
            result = await agent.run(f"run {run}: what is the weather in {city}?")
            assert result.output == f"Answer: {forecast(city)}"
        await session.wait_for_compaction()
        grep = await session.grep("run 1:")
        stored = await session.conversation_messages()
        problems = await session.verify()

    assert len(script.inputs) == 300
    assert len(compactions) >= 3
    window = session.limits.context_limit - session.limits.max_output_tokens
    largest = max(content_tokens(estimator, m) for m in script.inputs)
    assert largest < window
    for messages in script.inputs:
        assert_calls_answered(messages)
    assert any(m.text.startswith("run 1: what is the weather") for m in grep.matches)
    prompts = [m.text_content() for m in stored if m.role == "user"]
    assert len(prompts) == 150 and prompts[0].startswith("run 1:")  # each stored once
    answers = [m.text_content() for m in stored if m.text_content().startswith("Answer:")]
    assert len(answers) == 150  # final responses too (after_run)
    assert sum(1 for m in stored for p in m.tool_parts() if p.output) == 150
    replies = [m for m in stored if m.role == "assistant"]
    assert sum(m.tokens.input for m in replies) == 300 * 200  # each response's own usage
    assert problems == []


# -- runs see each other ----------------------------------------------------------------------


async def test_the_next_run_sees_the_last_one_without_passing_history(db: str) -> None:
    script = Script()
    async with history(db) as memory:
        agent = make_agent(script, memory.capability())
        await agent.run("My name is Ada.")
        await agent.run("Weather in Lima?")
    second = script.inputs[1]
    texts = [p.content for m in second for p in m.parts if isinstance(p, UserPromptPart | TextPart)]
    assert texts[:2] == ["My name is Ada.", "Noted."]
    assert texts[-1] == "Weather in Lima?"
    assert all(m.metadata and m.metadata[MARK] in ("context", "stored") for m in second)


async def test_history_passed_back_as_processor_is_stored_once(db: str) -> None:
    script = Script()
    async with history(db) as memory:
        agent = make_agent(script, ProcessHistory(memory))  # the plain processor
        result = await agent.run("Weather in Oslo?")
        for prompt in ("Thanks", "Weather in Bern?"):
            result = await agent.run(prompt, message_history=result.all_messages())
        await memory.remember(result.new_messages())  # the last final response
        texts = await stored_texts(memory)
    assert texts == [
        ("user", "Weather in Oslo?"),
        ("assistant", "Let me check."),
        ("assistant", "Answer: Oslo: 18 C and dry"),
        ("user", "Thanks"),
        ("assistant", "Noted."),
        ("user", "Weather in Bern?"),
        ("assistant", "Let me check."),
        ("assistant", "Answer: Bern: 18 C and dry"),
    ]


async def test_history_that_went_through_json_is_not_stored_again(db: str) -> None:
    script = Script()
    async with history(db) as memory:
        agent = make_agent(script, memory.capability())
        first = await agent.run("Weather in Quito?")
        saved = ModelMessagesTypeAdapter.dump_json(first.all_messages())
        again = ModelMessagesTypeAdapter.validate_json(saved)
        await agent.run("And tomorrow?", message_history=again)
        texts = await stored_texts(memory)
    assert [t for r, t in texts if r == "user"] == ["Weather in Quito?", "And tomorrow?"]
    assert len(texts) == 5


async def test_a_resumed_session_gives_the_model_its_history(db: str) -> None:
    script = Script()
    async with history(db) as memory:
        await make_agent(script, memory.capability()).run("Weather in Dakar?")
    async with history(db) as resumed:
        await make_agent(script, resumed.capability()).run("Thanks")
    last = script.inputs[-1]
    assert_calls_answered(last)
    returns = [p for m in last for p in m.parts if isinstance(p, ToolReturnPart)]
    assert [r.content for r in returns] == [forecast("Dakar")]
    assert returns[0].tool_name == "weather"


# -- what cannot be mapped comes back as it was ---------------------------------------------


async def test_parts_mnesis_cannot_map_are_stored_verbatim_and_returned_equal(db: str) -> None:
    thinking = ModelResponse(
        parts=[ThinkingPart("hmm", signature="sig-1"), TextPart("Here.")],
        usage=RequestUsage(input_tokens=5, output_tokens=3),
    )
    image = ModelRequest(parts=[UserPromptPart(["Look:", ImageUrl("https://example.com/cat.png")])])
    async with history(db) as memory:
        await memory.remember([image, thinking])
        returned = await memory([ModelRequest.user_text_prompt("next")])
    back_image, back_thinking = returned[0], returned[1]
    assert isinstance(back_image, ModelRequest) and isinstance(back_thinking, ModelResponse)
    assert back_image.parts == image.parts
    assert back_thinking.parts == thinking.parts
    assert isinstance(returned[-1], ModelRequest)
    assert returned[-1].parts[0].content == "next"  # type: ignore[union-attr]


async def test_a_tool_retry_is_kept_as_the_calls_error(db: str) -> None:
    calls = {"n": 0}

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart) and last.outcome == "success":
            return ModelResponse(parts=[TextPart(f"Done: {last.content}")])
        calls["n"] += 1
        return ModelResponse(
            parts=[ToolCallPart("flaky", {"x": calls["n"]}, tool_call_id=f"f{calls['n']}")]
        )

    async with history(db) as memory:
        agent = Agent(FunctionModel(model), capabilities=[memory.capability()])

        @agent.tool_plain
        def flaky(x: int) -> str:
            """Fails the first time."""
            if x == 1:
                raise ModelRetry("try x=2")
            return "ok"

        result = await agent.run("go")
        session = await memory.mnesis_session()
        parts = [p for m in await session.messages() for p in m.tool_parts()]
    assert result.output == "Done: ok"
    assert parts[0].error_message is not None and "try x=2" in parts[0].error_message
    assert parts[1].output == "ok"


# -- bad input and packaging ----------------------------------------------------------------


async def test_bad_input_gets_clear_errors(db: str) -> None:
    async with history(db) as memory:
        with pytest.raises(InvalidInputError, match="list"):
            await memory(("not", "a list"))  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="ModelMessage"):
            await memory([{"kind": "request"}])  # type: ignore[list-item]
        other = await MnesisSession.create(model=MODEL, db_path=db)
        try:
            with pytest.raises(InvalidInputError, match="different sessions"):
                MnesisHistory("another-id", session=other)
            shared = MnesisHistory(session=other)
            await shared.remember([ModelRequest.user_text_prompt("hello")])
            await shared.close()
            assert not other.closed
            assert [m.text_content() for m in await other.messages()] == ["hello"]
        finally:
            await other.close()


def test_importing_mnesis_does_not_import_pydantic_ai() -> None:
    code = "import sys, mnesis, mnesis.integrations; print('pydantic_ai' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_integration_names_its_extra_when_pydantic_ai_is_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "pydantic_ai"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('pydantic_ai is not installed')\n")
    code = "import mnesis.integrations.pydantic_ai"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode != 0
    assert "pip install 'mnesis[pydantic-ai]'" in done.stderr
