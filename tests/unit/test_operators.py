"""LLMMap and AgenticMap with the mock provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from mnesis import AgenticMap, EventBus, LLMMap, MnesisSession, MockProvider
from mnesis.errors import InvalidInputError, LLMPermanentError
from mnesis.llm.base import LLMRequest
from mnesis.llm.mock import MockReply, MockToolCall
from mnesis.models.config import OperatorConfig
from mnesis.operators import extract_json, tool_writes


class Sentiment(BaseModel):
    label: str
    score: float


MODEL = "openai/gpt-4o"


def user_text(request: LLMRequest) -> str:
    return str(request.messages[-1]["content"])


@pytest.mark.parametrize(
    "template", ["Classify this", "{{ items }}", "{% for x in y %}{{ x }}{% endfor %}", "{{ item"]
)
async def test_templates_must_reference_item_and_parse(template: str) -> None:
    calls = 0

    def handler(request: LLMRequest) -> str:
        nonlocal calls
        calls += 1
        return "{}"

    op = LLMMap(model=MODEL, provider=MockProvider(handler))
    with pytest.raises(ValueError):
        await op.run_all(["a"], template, Sentiment)
    assert calls == 0


async def test_llm_map_validates_with_pydantic_and_keeps_input_order() -> None:
    def handler(request: LLMRequest) -> str:
        text = user_text(request)
        word = text.split("Review: ")[1].split("\n")[0]
        return f'```json\n{{"label": "{word}", "score": 0.9}}\n```'

    bus = EventBus()
    events: list[str] = []
    bus.subscribe(None, lambda e, p: events.append(e.value))
    op = LLMMap(
        OperatorConfig(llm_map_concurrency=3),
        event_bus=bus,
        model=MODEL,
        provider=MockProvider(handler),
    )
    inputs = [f"w{i}" for i in range(10)]
    batch = await op.run_all(inputs, "Review: {{ item }}", Sentiment)
    assert [r.input for r in batch.results] == inputs
    assert all(isinstance(r.output, Sentiment) for r in batch.successes)
    assert [r.output.label for r in batch.results] == inputs
    assert batch.total_attempts == 10 and not batch.failures
    assert events[0] == "map.started" and events[-1] == "map.completed"
    assert events.count("map.item_completed") == 10


async def test_invalid_reply_is_retried_with_the_error_fed_back() -> None:
    seen: list[list[dict[str, Any]]] = []

    def handler(request: LLMRequest) -> str:
        seen.append(request.messages)
        return '{"label": "pos"}' if len(request.messages) == 1 else '{"label": "pos", "score": 1}'

    op = LLMMap(model=MODEL, provider=MockProvider(handler))
    (result,) = (await op.run_all([{"text": "great"}], "{{ item.text }}", Sentiment)).results
    assert result.success and result.attempts == 2
    assert "score" in seen[1][-1]["content"]  # the validation error went back to the model
    assert seen[1][-2] == {"role": "assistant", "content": '{"label": "pos"}'}


async def test_json_schema_dicts_and_failure_kinds() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    def handler(request: LLMRequest) -> str:
        item = str(request.messages[0]["content"]).split("|")[0]
        return {"ok": '{"n": 3}', "bad": '{"n": "three"}', "prose": "no json here"}[item]

    op = LLMMap(model=MODEL, provider=MockProvider(handler))
    batch = await op.run_all(["ok", "bad", "prose"], "{{ item }}|", schema, max_retries=1)
    by_input = {r.input: r for r in batch.results}
    assert by_input["ok"].output == {"n": 3}
    assert by_input["bad"].error_kind == "validation" and by_input["bad"].attempts == 2
    assert by_input["prose"].error_kind == "schema_error"


async def test_timeouts_and_provider_errors_are_per_item() -> None:
    async def handler(request: LLMRequest) -> str:
        item = user_text(request).split("|")[0]
        if item == "slow":
            await asyncio.sleep(5)
        if item == "broken":
            raise LLMPermanentError("bad request")
        return '{"label": "x", "score": 0}'

    op = LLMMap(model=MODEL, provider=MockProvider(handler))
    batch = await op.run_all(
        ["slow", "broken", "fine"], "{{ item }}|", Sentiment, timeout_secs=0.1, max_retries=0
    )
    kinds = {r.input: r.error_kind for r in batch.results}
    assert kinds == {"slow": "timeout", "broken": "llm_error", "fine": None}


def test_bad_schema_is_rejected_before_any_call() -> None:
    op = LLMMap(model=MODEL, provider=MockProvider())
    with pytest.raises(InvalidInputError):
        asyncio.run(op.run_all(["a"], "{{ item }}", {"type": "no-such-type"}))
    with pytest.raises(InvalidInputError):
        asyncio.run(op.run_all(["a"], "{{ item }}", int))


def test_extract_json_variants() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure! {"a": {"b": 2}} hope that helps') == {"a": {"b": 2}}
    with pytest.raises(ValueError):
        extract_json("nothing")


def test_writing_tools_are_recognised() -> None:
    def tool(name: str, **extra: Any) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name}, **extra}

    assert tool_writes(tool("write_file"))
    assert tool_writes(tool("bash"))
    assert not tool_writes(tool("read_file"))
    assert not tool_writes(tool("grep"))
    assert tool_writes(tool("lookup", read_only=False))
    assert not tool_writes(tool("delete_cache", read_only=True))


async def test_agentic_map_runs_sub_sessions_linked_to_the_parent(db_path: str) -> None:
    def agent(request: LLMRequest) -> MockReply:
        last = request.messages[-1]
        if last["role"] == "tool":
            return MockReply(text=f"summary of {last['content']}")
        return MockReply(tool_calls=(MockToolCall("read_file", {"path": str(last["content"])}),))

    provider = MockProvider(agent)
    parent = await MnesisSession.create(model=MODEL, db_path=db_path, provider=provider)
    read_tool = {"type": "function", "function": {"name": "read_file", "parameters": {}}}
    op = AgenticMap(model=MODEL, provider=provider)
    batch = await op.run_all(
        ["a.py", "b.py"],
        "{{ item }}",
        tools=[read_tool],
        tool_handlers={"read_file": lambda path: f"contents of {path}"},
        parent_session_id=parent.id,
        db_path=db_path,
        max_turns=3,
    )
    assert [r.output_text for r in batch.results] == [
        "summary of contents of a.py",
        "summary of contents of b.py",
    ]
    assert all(r.success and r.token_usage.effective_total() > 0 for r in batch.results)
    # The parent's own context holds none of it; the transcripts are in the store.
    assert await parent.messages() == []
    child = await MnesisSession.load(
        batch.results[0].session_id or "", db_path=db_path, provider=provider
    )
    assert len(await child.messages()) == 3
    await child.close()
    await parent.close()


async def test_read_only_agents_refuse_writing_tools(db_path: str) -> None:
    write = {"type": "function", "function": {"name": "write_file", "parameters": {}}}
    op = AgenticMap(model=MODEL, provider=MockProvider())
    with pytest.raises(InvalidInputError, match="write_file"):
        await op.run_all(["x"], "{{ item }}", tools=[write], db_path=db_path)


async def test_agentic_map_reports_llm_failures_per_item(db_path: str) -> None:
    def agent(request: LLMRequest) -> str:
        if "boom" in json.dumps(request.messages):
            raise LLMPermanentError("provider said no")
        return "done"

    op = AgenticMap(model=MODEL, provider=MockProvider(agent))
    batch = await op.run_all(["ok", "boom"], "task {{ item }}", db_path=db_path)
    assert [(r.input, r.success, r.error_kind) for r in batch.results] == [
        ("ok", True, None),
        ("boom", False, "llm_error"),
    ]
    assert batch.failures[0].session_id is not None  # the failed transcript is kept


class Address(BaseModel):
    street: str
    zip_code: int


class Person(BaseModel):
    name: str
    tags: list[str]
    address: Address
    nickname: str | None = None


async def test_mock_mode_produces_schema_valid_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNESIS_MOCK_LLM", "1")
    op = LLMMap(model=MODEL)  # the default provider: the mock under MNESIS_MOCK_LLM=1
    batch = await op.run_all(["a", "b"], "Extract a person from {{ item }}", Person)
    assert not batch.failures
    assert all(isinstance(r.output, Person) for r in batch.results)
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3}, "kind": {"enum": ["x", "y"]}},
        "required": ["n", "kind"],
    }
    batch = await op.run_all(["a"], "{{ item }}", schema)
    assert batch.results[0].output == {"n": 3, "kind": "x"}


async def test_an_item_that_does_not_fit_the_template_fails_alone() -> None:
    op = LLMMap(model=MODEL, provider=MockProvider(lambda r: '{"label": "x", "score": 1}'))
    batch = await op.run_all([{"text": "ok"}, {"other": 1}], "{{ item.text }}", Sentiment)
    assert [r.success for r in batch.results] == [True, False]
    assert batch.results[1].error_kind == "validation" and "text" in (batch.results[1].error or "")


def test_camel_case_writers_and_unlisted_handlers_are_caught(tmp_path: Any) -> None:
    assert tool_writes({"function": {"name": "writeFile"}})
    assert tool_writes({"function": {"name": "deleteUser"}})
    assert not tool_writes({"function": {"name": "readFile"}})
    op = AgenticMap(model=MODEL, provider=MockProvider())
    with pytest.raises(InvalidInputError, match="saveNote"):
        asyncio.run(
            op.run_all(
                ["x"],
                "{{ item }}",
                tool_handlers={"saveNote": print},
                db_path=str(tmp_path / "a.db"),
            )
        )


async def test_map_completed_is_published_even_when_the_consumer_stops_early() -> None:
    bus = EventBus()
    events: list[str] = []
    bus.subscribe(None, lambda e, p: events.append(e.value))
    op = LLMMap(
        event_bus=bus, model=MODEL, provider=MockProvider(lambda r: '{"label": "x", "score": 1}')
    )
    stream = op.run(range(50), "{{ item }}", Sentiment, concurrency=2)
    async for _ in stream:
        break
    await stream.aclose()
    assert events[0] == "map.started" and events[-1] == "map.completed"


async def test_llm_map_fails_a_prompt_too_big_for_the_model_without_calling_it() -> None:
    calls = 0

    def handler(request: LLMRequest) -> str:
        nonlocal calls
        calls += 1
        return '{"label": "ok", "score": 1.0}'

    op = LLMMap(model="ollama/llama3", provider=MockProvider(handler))  # an 8,192-token window
    batch = await op.run_all(["short", "word " * 10_000], "Review: {{ item }}", Sentiment)
    small, big = batch.results
    assert small.success and calls == 1
    assert not big.success and big.attempts == 0
    assert big.error_kind == "validation"
    assert "8,192 input tokens" in (big.error or "")
