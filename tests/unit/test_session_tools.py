"""Tool calls: assembled from streamed fragments, persisted, paired with results."""

from __future__ import annotations

from typing import Any

import pytest

from mnesis import MnesisEvent, MnesisSession, MockProvider, MockReply, ToolPart
from mnesis.errors import InvalidInputError, ToolResultError
from mnesis.llm.base import LLMRequest
from mnesis.llm.mock import MockToolCall
from mnesis.models.message import ToolStatus

MODEL = "openai/gpt-4o"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def weather_model(request: LLMRequest) -> MockReply:
    last = request.messages[-1]
    if not request.tools:
        return MockReply(text="saw " + ",".join(m["role"] for m in request.messages))
    if last["role"] == "tool":
        return MockReply(text=f"It is {last['content']}.")
    return MockReply(tool_calls=(MockToolCall("get_weather", {"city": "Paris"}, id="call_1"),))


def assert_paired(messages: list[dict[str, Any]]) -> None:
    """Every assistant tool call is followed by exactly its tool results."""
    for i, message in enumerate(messages):
        if message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            following = messages[i + 1 : i + 1 + len(ids)]
            assert [m["role"] for m in following] == ["tool"] * len(ids)
            assert [m["tool_call_id"] for m in following] == ids
        if message["role"] == "tool":
            assert messages[i - 1]["role"] in ("assistant", "tool")


async def test_streamed_tool_call_is_assembled_persisted_and_returned(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(weather_model)
    ) as session:
        result = await session.send("weather?", tools=[WEATHER])
        assert result.finish_reason == "tool_calls"
        assert len(result.tool_calls) == 1
        call = result.tool_calls[0]
        assert (call.tool_name, call.tool_call_id, call.input) == (
            "get_weather",
            "call_1",
            {"city": "Paris"},
        )
        stored = (await session.messages())[-1]
        assert stored.tool_parts()[0].status == ToolStatus.PENDING
        # Before a result is recorded the context still pairs the call with a placeholder.
        context = await session.context_for_next_turn()
        assert_paired(context)
        await session.record_tool_result("call_1", "sunny, 21C")
        context = await session.context_for_next_turn()
        assert_paired(context)
        assert context[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
        followup = await session.send("and so?")
        assert followup.text == "saw system,user,assistant,tool,user"
        stored_call = (await session.messages())[1].tool_parts()[0]
        assert stored_call.output == "sunny, 21C"
        assert stored_call.status == ToolStatus.COMPLETED
        assert await session.verify() == []


async def test_tool_result_fills_once_and_unknown_ids_are_rejected(db_path: str) -> None:
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(weather_model)
    ) as session:
        await session.send("weather?", tools=[WEATHER])
        await session.record_tool_result("call_1", "sunny")
        with pytest.raises(ToolResultError, match="already has a result"):
            await session.record_tool_result("call_1", "rainy")
        with pytest.raises(ToolResultError, match="no tool call"):
            await session.record_tool_result("call_nope", "x")
        with pytest.raises(InvalidInputError):
            await session.record_tool_result("call_1")
        assert (await session.messages())[1].tool_parts()[0].output == "sunny"


async def test_tool_handlers_run_the_loop_until_the_model_answers(db_path: str) -> None:
    calls: list[str] = []

    async def get_weather(city: str) -> dict[str, Any]:
        calls.append(city)
        return {"city": city, "sky": "clear"}

    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(weather_model)
    ) as session:
        result = await session.send(
            "weather?", tools=[WEATHER], tool_handlers={"get_weather": get_weather}
        )
        assert calls == ["Paris"]
        assert result.finish_reason == "stop"
        assert result.steps == 2
        assert "clear" in result.text
        history = await session.messages()
        assert [m.role for m in history] == ["user", "assistant", "assistant"]
        assert history[1].tool_parts()[0].output == '{"city": "Paris", "sky": "clear"}'
        assert result.tokens.effective_total() > 0
        assert_paired(await session.context_for_next_turn())


async def test_failing_tool_handler_feeds_the_error_back(db_path: str) -> None:
    def get_weather(city: str) -> str:
        raise TimeoutError("weather service down")

    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(weather_model)
    ) as session:
        result = await session.send(
            "weather?", tools=[WEATHER], tool_handlers={"get_weather": get_weather}
        )
        assert "weather service down" in result.text
        part = (await session.messages())[1].tool_parts()[0]
        assert part.status == ToolStatus.ERROR
        assert "TimeoutError" in (part.error_message or "")


async def test_tool_loop_stops_at_the_step_limit(db_path: str) -> None:
    counter = 0

    def always_call(request: LLMRequest) -> MockReply:
        nonlocal counter
        counter += 1
        return MockReply(tool_calls=(MockToolCall("get_weather", {"city": f"c{counter}"}),))

    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(always_call)
    ) as session:
        result = await session.send(
            "loop",
            tools=[WEATHER],
            tool_handlers={"get_weather": lambda city: "ok"},
            max_tool_steps=4,
        )
        assert result.steps == 4
        assert result.finish_reason == "tool_calls"
        assert_paired(await session.context_for_next_turn())


async def test_identical_tool_calls_trigger_doom_loop_detection(db_path: str) -> None:
    def same_call(request: LLMRequest) -> MockReply:
        if not request.tools:
            return MockReply(text="fine")
        return MockReply(tool_calls=(MockToolCall("get_weather", {"city": "Paris"}),))

    events: list[dict[str, Any]] = []
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(same_call)
    ) as session:
        session.subscribe(MnesisEvent.DOOM_LOOP_DETECTED, lambda e, p: events.append(p))
        result = await session.send(
            "loop",
            tools=[WEATHER],
            tool_handlers={"get_weather": lambda city: "sunny"},
            max_tool_steps=10,
        )
        assert result.doom_loop_detected
        assert result.steps == 3  # the loop stopped at the threshold, not at the step limit
        assert events and events[0]["tool_name"] == "get_weather"
        assert events[0]["repeat_count"] == 3
        # The session goes on.
        later = await session.send("something else")
        assert not later.doom_loop_detected
        assert later.text == "fine"


async def test_record_accepts_tool_parts_and_detects_doom_loops(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        outcomes = []
        for i in range(3):
            part = ToolPart(
                tool_name="ls",
                tool_call_id=f"t{i}",
                input={"path": "/"},
                output="a b c",
                status=ToolStatus.COMPLETED,
            )
            outcomes.append(await s.record(f"list it {i}", [part]))
        assert [o.doom_loop_detected for o in outcomes] == [False, False, True]
        context = await s.context_for_next_turn()
        assert_paired(context)
        assert sum(1 for m in context if m["role"] == "tool") == 3


async def test_record_with_pending_call_then_result(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        call = ToolPart(tool_name="search", tool_call_id="s1", input={"q": "mnesis"})
        await s.record("find it", [call])
        await s.record_tool_results({"s1": ("", None)})
        context = await s.context_for_next_turn()
        assert context[-1] == {"role": "tool", "tool_call_id": "s1", "content": ""}


@pytest.mark.parametrize(
    "tools",
    [[{"type": "function"}], ["get_weather"], [{"function": {"name": ""}}]],
)
async def test_malformed_tool_definitions_are_rejected(db_path: str, tools: Any) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        with pytest.raises(InvalidInputError, match="tool"):
            await s.send("hi", tools=tools)
        assert await s.messages() == []


async def test_user_message_cannot_carry_tool_calls(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        with pytest.raises(InvalidInputError, match="tool"):
            await s.record([ToolPart(tool_name="x", tool_call_id="1")], "ok")
        assert await s.messages() == []


async def test_default_mock_calls_a_named_tool_then_reports(db_path: str) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        result = await s.send(
            "please call get_weather",
            tools=[WEATHER],
            tool_handlers={"get_weather": lambda city: f"{city}: sunny"},
        )
        assert result.text == "Tool results received: mock: sunny"


async def test_a_call_recorded_with_its_output_is_complete_and_cannot_be_overwritten(
    db_path: str,
) -> None:
    async with MnesisSession.open(model=MODEL, db_path=db_path, provider=MockProvider()) as s:
        await s.record("add", [ToolPart(tool_name="add", tool_call_id="a1", output="4")])
        stored = (await s.messages())[1].tool_parts()[0]
        assert stored.status == ToolStatus.COMPLETED
        with pytest.raises(ToolResultError, match="already has a result"):
            await s.record_tool_result("a1", "5")
        assert (await s.messages())[1].tool_parts()[0].output == "4"
        assert await s.verify() == []


async def test_the_tool_loop_publishes_parts_created_and_updated(db_path: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    async with MnesisSession.open(
        model=MODEL, db_path=db_path, provider=MockProvider(weather_model)
    ) as session:
        session.event_bus.subscribe_all(lambda event, payload: seen.append((event.value, payload)))
        await session.send(
            "weather?", tools=[WEATHER], tool_handlers={"get_weather": lambda city: "sunny"}
        )
        await session.event_bus.drain()
        call_message = (await session.messages())[1]
    parts = [e for e in seen if e[0].startswith("part.") or e[0].startswith("message.")]
    assert [name for name, _ in parts] == [
        "message.created",  # the user message
        "part.created",
        "message.created",  # the tool call
        "part.created",
        "part.updated",  # its result
        "message.updated",
        "message.created",  # the answer
        "part.created",
    ]
    assert parts[3][1]["part_type"] == "tool" and parts[3][1]["index"] == 0
    assert parts[4][1]["tool_call_id"] == "call_1" and parts[4][1]["status"] == "completed"
    assert parts[5][1]["message_id"] == call_message.id
