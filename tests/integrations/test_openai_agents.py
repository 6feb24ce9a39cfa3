"""MnesisAgentsSession under the OpenAI Agents SDK's own Runner.

The model is scripted (:class:`ScriptedModel`, written here against the SDK's
``Model`` interface), so the Runner, its tool execution and its session
persistence are the SDK's real code. Protocol tests run on SQLite and on
PostgreSQL (a fresh database each; with ``CI=true`` an unreachable server fails).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary

from mnesis import MnesisConfig, MnesisSession, MockProvider
from mnesis.errors import ConfigError, InvalidInputError, SessionClosedError, SessionNotFoundError
from mnesis.events.bus import MnesisEvent
from mnesis.integrations._optional import require
from mnesis.integrations.openai_agents import CLEAR_MARKER, MnesisAgentsSession
from mnesis.llm.base import LLMRequest
from mnesis.models.message import TokenUsage, ToolPart
from mnesis.tokens import TokenEstimator

set_tracing_disabled(True)  # no trace export: tests never touch the network

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
    """mnesis's compaction model: a short summary that names its first turn."""
    content = str(request.messages[-1]["content"])
    turns = re.findall(r"turn (\d+)", content)
    first = turns[0] if turns else "?"
    return f"Summary: weather questions from turn {first} on; the tool answered each."


def output_message(text: str, n: int) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        content=[ResponseOutputText(text=text, annotations=[], type="output_text")],
        role="assistant",
        status="completed",
        type="message",
    )


class ScriptedModel(Model):
    """Asks for the weather tool when the user names a city, then answers from
    the tool's output; records every input it is given."""

    def __init__(self) -> None:
        self.calls = 0
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
        **_: Any,
    ) -> ModelResponse:
        self.calls += 1
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        last = items[-1]
        usage = Usage(requests=1, input_tokens=100, output_tokens=10, total_tokens=110)
        if last.get("type") == "function_call_output":
            reply = output_message(f"Answer: {last['output']}.", self.calls)
            return ModelResponse(output=[reply], usage=usage, response_id=None)
        city = next((c for c in CITIES if c in str(last.get("content", ""))), None)
        if city is None:
            reply = output_message("Noted.", self.calls)
            return ModelResponse(output=[reply], usage=usage, response_id=None)
        call = ResponseFunctionToolCall(
            arguments=json.dumps({"city": city}),
            call_id=f"call_{self.calls}_{secrets.token_hex(3)}",
            name="weather",
            type="function_call",
            id=f"fc_{self.calls}",
            status="completed",
        )
        return ModelResponse(output=[call], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("these tests run the Runner without streaming")


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: 21 C, clear skies, light wind from the west"


def make_agent(model: ScriptedModel) -> Agent[Any]:
    return Agent(name="forecaster", instructions="Answer briefly.", model=model, tools=[weather])


# -- databases ---------------------------------------------------------------------------


@pytest.fixture
def db(db_url: str) -> str:
    """An SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    return db_url



def agents_session(db: str, session_id: str = "conv-1", **kwargs: Any) -> MnesisAgentsSession:
    return MnesisAgentsSession(
        session_id, model=MODEL, db_path=db, provider=MockProvider(summariser), **kwargs
    )


USER = {"role": "user", "content": "What is the weather in Oslo?"}
CALL = {
    "type": "function_call",
    "call_id": "call_a",
    "name": "weather",
    "arguments": '{"city": "Oslo"}',
    "id": "fc_a",
    "status": "completed",
}
OUTPUT = {"type": "function_call_output", "call_id": "call_a", "output": "Oslo: 3 C"}
REPLY = {
    "id": "msg_a",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "It is 3 C in Oslo.", "annotations": []}],
}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]}
UNKNOWN = {"type": "future_item_type", "payload": {"nested": [1, 2, {"x": None}]}, "id": "f1"}


def as_returned(item: dict[str, Any]) -> dict[str, Any]:
    """What ``get_items`` gives back for the items above: each as it came."""
    return item


# -- the Runner, at length -----------------------------------------------------------------


async def test_runner_goes_300_turns_with_tools_across_compactions_and_loses_nothing(
    tmp_path: Path,
) -> None:
    model = ScriptedModel()
    agent = make_agent(model)
    db = str(tmp_path / "long.db")
    estimator = TokenEstimator(MODEL)
    compactions: list[object] = []
    async with MnesisAgentsSession(
        "long", model=MODEL, db_path=db, config=small_config(), provider=MockProvider(summariser)
    ) as session:
        mnesis = await session.mnesis_session()
        mnesis.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: compactions.append(p))
        for turn in range(1, 301):
            city = CITIES[turn % len(CITIES)]
            result = await Runner.run(
                agent, f"turn {turn}: what is the weather in {city}?", session=session
            )
            assert (
                result.final_output
                == f"Answer: {city}: 21 C, clear skies, light wind from the west."
            )

        await mnesis.wait_for_compaction()
        breakdown = await mnesis.context_breakdown()
        grep = await mnesis.grep("turn 1:")
        stored = await mnesis.messages()
        problems = await mnesis.verify()

    assert model.calls == 600  # a tool call and an answer per turn
    assert len(compactions) >= 3
    # What the model was sent (items as JSON, so an overestimate) fits its window
    # less the output reserve; mnesis's own context never passed the usable budget.
    window = mnesis.limits.context_limit - mnesis.limits.max_output_tokens
    largest = max(estimator.estimate(json.dumps(items)) for items in model.inputs)
    assert largest < window
    assert breakdown.total <= mnesis.usable_tokens
    for items in model.inputs:  # every call the model saw is followed by its output
        for i, item in enumerate(items):
            if item.get("type") == "function_call":
                assert items[i + 1]["type"] == "function_call_output"
                assert items[i + 1]["call_id"] == item["call_id"]
    assert any(m.text.startswith("turn 1: what is the weather") for m in grep.matches)
    user_texts = [m.text_content() for m in stored if m.role == "user" and not m.is_summary]
    assert len(user_texts) == 300 and user_texts[0].startswith("turn 1:")
    tool_results = [p for m in stored for p in m.tool_parts() if p.output is not None]
    assert len(tool_results) == 300
    assert mnesis.token_usage.input >= 600 * 100  # the SDK's usage, every call
    assert problems == []


async def test_the_agent_sees_the_earlier_turns_through_the_session(db: str) -> None:
    model = ScriptedModel()
    async with agents_session(db) as session:
        await Runner.run(make_agent(model), "My name is Ada.", session=session)
        await Runner.run(make_agent(model), "Weather in Lima?", session=session)
    second_run_first_input = model.inputs[1]
    assert second_run_first_input[0] == {"role": "user", "content": "My name is Ada."}
    assert second_run_first_input[1] == output_message("Noted.", 1).model_dump(exclude_unset=True)
    assert second_run_first_input[-1]["content"] == "Weather in Lima?"


async def test_run_usage_is_recorded_on_the_mnesis_session(db: str) -> None:
    model = ScriptedModel()
    async with agents_session(db) as session:
        await Runner.run(make_agent(model), "Weather in Bern?", session=session)
        await Runner.run(make_agent(model), "Thanks", session=session)
        mnesis = await session.mnesis_session()
        assert mnesis.token_usage.input == 300 and mnesis.token_usage.output == 30


# -- what any Session must do ---------------------------------------------------------------


async def test_items_come_back_in_order_known_ones_normalised_others_verbatim(db: str) -> None:
    added = [USER, REASONING, CALL, OUTPUT, REPLY, UNKNOWN]
    async with agents_session(db) as session:
        await session.add_items(added)
        assert await session.get_items() == [as_returned(i) for i in added]
    async with agents_session(db) as reopened:  # from the store, not from memory
        assert await reopened.get_items() == [as_returned(i) for i in added]


class ReasoningModel(ScriptedModel):
    """A reasoning model: each output starts with a reasoning item, followed by
    the call or message it produced (both with the ids the Responses API links)."""

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        response = await super().get_response(*args, **kwargs)
        thought = ResponseReasoningItem(
            id=f"rs_{self.calls}",
            summary=[Summary(text="thinking", type="summary_text")],
            type="reasoning",
        )
        return ModelResponse(
            output=[thought, *response.output], usage=response.usage, response_id=None
        )


async def test_the_item_after_a_reasoning_item_keeps_its_id_for_the_next_request(
    db: str,
) -> None:
    # The Responses API refuses a reasoning item replayed without the id of the
    # call or message that followed it ("provided without its required following item").
    model = ReasoningModel()
    async with agents_session(db) as session:
        await Runner.run(make_agent(model), "Weather in Lima?", session=session)
        await Runner.run(make_agent(model), "Thanks", session=session)
    replayed = model.inputs[-1]
    follows = [
        replayed[n + 1] for n, item in enumerate(replayed) if item.get("type") == "reasoning"
    ]
    assert [item.get("id") for item in follows] == ["fc_1", "msg_2"]
    assert follows[0]["status"] == "completed" and follows[1]["type"] == "message"


async def test_limit_gives_the_latest_items_in_order(db: str) -> None:
    async with agents_session(db) as session:
        await session.add_items([{"role": "user", "content": f"m{i}"} for i in range(5)])
        assert [i["content"] for i in await session.get_items(limit=2)] == ["m3", "m4"]
        assert await session.get_items(limit=0) == []
        assert len(await session.get_items(limit=50)) == 5
        with pytest.raises(InvalidInputError):
            await session.get_items(limit=-1)


async def test_pop_returns_the_last_item_hides_it_and_keeps_it_in_the_log(db: str) -> None:
    async with agents_session(db) as session:
        await session.add_items([USER, CALL, OUTPUT, REPLY])
        assert await session.pop_item() == as_returned(REPLY)
        assert await session.pop_item() == OUTPUT
        assert await session.get_items() == [USER, as_returned(CALL)]
        # the output can be answered again; the popped one stays stored
        again = {**OUTPUT, "output": "Oslo: 4 C"}
        await session.add_items([again])
        assert await session.get_items() == [USER, as_returned(CALL), again]
        mnesis = await session.mnesis_session()
        assert (await mnesis.grep("3 C in Oslo")).matches
        assert mnesis.token_usage.effective_total() >= 0
        assert await mnesis.verify() == []


async def test_pop_on_an_empty_session_returns_none(db: str) -> None:
    async with agents_session(db) as session:
        assert await session.pop_item() is None
        assert await session.pop_item(hard_delete=True) is None


async def test_clear_empties_get_items_keeps_the_log_and_survives_compaction(db: str) -> None:
    async with agents_session(db, config=small_config()) as session:
        for i in range(30):
            await session.add_items(
                [{"role": "user", "content": f"old {i} " + "filler " * 40}, REPLY]
            )
        await session.clear_session()
        assert await session.get_items() == []
        await session.add_items([{"role": "user", "content": "fresh start"}])
        mnesis = await session.mnesis_session()
        for i in range(30):
            await session.add_items([{"role": "user", "content": f"new {i} " + "words " * 40}])
        await mnesis.compact()
        items = await session.get_items()
        assert not any("old" in str(i.get("content")) for i in items)
        assert (await mnesis.grep("old 0")).matches  # still stored
        assert CLEAR_MARKER in [m["content"] for m in await mnesis.context_for_next_turn()]


async def test_sessions_with_different_ids_do_not_share_items(db: str) -> None:
    async with agents_session(db, "a") as a, agents_session(db, "b") as b:
        await a.add_items([{"role": "user", "content": "for a"}])
        await b.add_items([{"role": "user", "content": "for b"}])
        await a.clear_session()
        assert await a.get_items() == []
        assert await b.get_items() == [{"role": "user", "content": "for b"}]
        assert a.session_id == "a" and b.session_id == "b"


async def test_bad_input_gets_clear_errors(db: str) -> None:
    async with agents_session(db) as session:
        with pytest.raises(InvalidInputError, match="dict"):
            await session.add_items(["not an item"])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError, match="JSON"):
            await session.add_items([{"role": "user", "content": object()}])
        with pytest.raises(InvalidInputError, match="list"):
            await session.add_items("hello")  # type: ignore[arg-type]
        assert await session.get_items() == []  # nothing half-stored
        other = await MnesisSession.create(model=MODEL, db_path=db)
        try:
            with pytest.raises(InvalidInputError, match="different sessions"):
                MnesisAgentsSession("another-id", session=other)
        finally:
            await other.close()


async def test_an_existing_mnesis_session_can_back_the_agents_session(db: str) -> None:
    mnesis = await MnesisSession.create(model=MODEL, db_path=db, provider=MockProvider(summariser))
    try:
        session = MnesisAgentsSession(session=mnesis)
        assert session.session_id == mnesis.id
        await Runner.run(make_agent(ScriptedModel()), "hello", session=session)
        await session.close()  # not ours: stays open
        assert not mnesis.closed
        texts = [m.text_content() for m in await mnesis.messages()]
        assert texts[0] == "hello" and texts[1].endswith("\nNoted.")
        assert '"id":"msg_1"' in texts[1]  # the reply's fields, kept
    finally:
        await mnesis.close()


# -- erasure ------------------------------------------------------------------------------


def fts_is_whole(db: str) -> None:
    if "://" not in db:  # SQLite: the full-text index still checks out
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO search_index(search_index) VALUES('integrity-check')")


async def test_hard_pop_erases_the_item_from_the_store(db: str) -> None:
    async with agents_session(db) as session:
        await session.add_items([USER, {"role": "assistant", "content": "secret kumquat 42"}])
        popped = await session.pop_item(hard_delete=True)
        assert popped == {"role": "assistant", "content": "secret kumquat 42"}
        assert await session.get_items() == [USER]
        mnesis = await session.mnesis_session()
        assert not (await mnesis.grep("kumquat")).matches
        assert all("kumquat" not in m.text_content() for m in await mnesis.messages())
        assert await mnesis.verify() == []
    fts_is_whole(db)


async def test_hard_pop_of_a_tool_output_erases_it_and_keeps_the_call(db: str) -> None:
    async with agents_session(db) as session:
        await session.add_items([USER, CALL, {**OUTPUT, "output": "private tangelo"}])
        assert (await session.pop_item(hard_delete=True))["output"] == "private tangelo"
        assert await session.get_items() == [USER, as_returned(CALL)]
        await session.add_items([OUTPUT])
        assert await session.get_items() == [USER, as_returned(CALL), OUTPUT]
        mnesis = await session.mnesis_session()
        assert not (await mnesis.grep("tangelo")).matches
        assert await mnesis.verify() == []
    fts_is_whole(db)


async def test_hard_pop_after_a_soft_pop_is_refused(db: str) -> None:
    async with agents_session(db) as session:
        await session.add_items([USER, REPLY])
        await session.pop_item()
        with pytest.raises(InvalidInputError, match="clear_session"):
            await session.pop_item(hard_delete=True)
        assert await session.get_items() == [USER]


async def test_hard_clear_erases_everything_and_keeps_the_id(db: str) -> None:
    async with agents_session(db) as session, agents_session(db, "neighbour") as neighbour:
        await neighbour.add_items([{"role": "user", "content": "neighbour durian"}])
        await Runner.run(make_agent(ScriptedModel()), "durian weather in Perth", session=session)
        await session.clear_session(hard_delete=True)
        assert await session.get_items() == []
        mnesis = await session.mnesis_session()
        assert mnesis.id == session.session_id == "conv-1"
        assert await mnesis.messages() == []
        assert not (await mnesis.grep("durian")).matches
        assert (await (await neighbour.mnesis_session()).grep("durian")).matches
        await session.add_items([{"role": "user", "content": "after"}])
        assert await session.get_items() == [{"role": "user", "content": "after"}]
        assert await mnesis.verify() == []
    fts_is_whole(db)


# -- packaging ----------------------------------------------------------------------------


def test_importing_mnesis_or_the_integration_does_not_import_the_sdk() -> None:
    code = "import sys, mnesis, mnesis.integrations.openai_agents; print('agents' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False"]


# -- the session methods the integration is built on ---------------------------------------


async def test_a_turn_can_be_stored_in_steps_with_record_user_and_record_reply(db: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db) as session:
        user_id = await session.record_user("Weather in Hanoi?")
        call = ToolPart(tool_name="weather", tool_call_id="h1", input={"city": "Hanoi"})
        first = await session.record_reply([call], finish_reason="tool_calls")
        await session.record_tool_result("h1", "Hanoi: 30 C")
        second = await session.record_reply("It is 30 C.", tokens=TokenUsage(input=50, output=5))
        with pytest.raises(InvalidInputError):
            await session.record_reply("x", tokens="many")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            await session.record_user("")
        context = await session.context_for_next_turn()
        stored = await session.messages()
        snapshots = await session.history()
        problems = await session.verify()
    assert [m.id for m in stored] == [
        user_id,
        first.assistant_message_id,
        second.assistant_message_id,
    ]
    assert first.user_message_id == "" and second.tokens == TokenUsage(input=50, output=5)
    assert [m["role"] for m in context] == ["user", "assistant", "tool", "assistant"]
    assert len(snapshots) == 2 and problems == []


async def test_an_erased_session_is_closed_and_gone(db: str) -> None:
    session = await MnesisSession.create(model=MODEL, db_path=db)
    await session.record("secret", "kept secret")
    await session.erase()
    assert session.closed
    with pytest.raises(SessionClosedError):
        await session.record("again", "no")
    with pytest.raises(SessionNotFoundError):
        await MnesisSession.load(session.id, db_path=db)


def test_a_missing_framework_is_a_config_error_naming_the_extra() -> None:
    with pytest.raises(ConfigError, match=r"pip install 'mnesis\[agents\]'"):
        require("mnesis_no_such_framework", "agents")
    assert require("json", "agents").dumps([]) == "[]"
