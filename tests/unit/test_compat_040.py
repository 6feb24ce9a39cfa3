"""mnesis 0.4.0's shapes and names, checked one by one against ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnesis import (
    AgenticMap,
    CompactionConfig,
    EventBus,
    LLMMap,
    MapBatch,
    MapResult,
    MnesisConfig,
    MnesisEvent,
    MnesisSession,
    OperatorConfig,
    SessionConfig,
    StoreConfig,
    TextPart,
    ToolPart,
)
from mnesis.files import FileHandleResult, LargeFileHandler
from mnesis.models.config import FileConfig
from mnesis.models.message import ToolStatus

MODEL = "anthropic/claude-opus-4-6"


@pytest.fixture(autouse=True)
def mock_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNESIS_MOCK_LLM", "1")


def test_tool_status_is_built_with_a_state_and_compares_as_before() -> None:
    done = ToolStatus(state="completed")
    assert done.state == "completed" and done == ToolStatus.COMPLETED == "completed"
    assert str(ToolStatus("error")) == "error" and ToolStatus.ERROR.value == "error"
    part = ToolPart(tool_name="skill", tool_call_id="c1", status=done)
    assert part.status.state == "completed" and part.is_protected
    assert part.compacted_at is None
    assert ToolPart.model_validate_json(part.model_dump_json()) == part
    with pytest.raises(ValueError):
        ToolStatus(state="finished")  # type: ignore[arg-type]


def test_event_bus_subscribe_all_and_unsubscribe_all() -> None:
    bus, seen = EventBus(), []

    def handler(event: MnesisEvent, payload: Any) -> None:
        seen.append(event)

    bus.subscribe_all(handler)
    bus.subscribe(MnesisEvent.SESSION_UPDATED, handler)
    bus.publish(MnesisEvent.SESSION_UPDATED, {})
    assert seen == [MnesisEvent.SESSION_UPDATED] * 2
    bus.unsubscribe_all(handler)
    bus.publish(MnesisEvent.PRUNE_COMPLETED, {})
    assert len(seen) == 2
    for name in ("SESSION_DELETED", "MESSAGE_UPDATED", "PART_CREATED", "PART_UPDATED"):
        assert hasattr(MnesisEvent, name)


def test_batches_have_totals_and_the_split_constructor() -> None:
    ok = MapResult(input=1, success=True, attempts=2, index=1)
    bad = MapResult(input=0, success=False, attempts=1, index=0)
    batch = MapBatch(successes=[ok], failures=[bad], total_attempts=3)
    assert (batch.total, batch.total_attempts) == (2, 3)
    assert [r.input for r in batch.results] == [0, 1]


async def test_a_bad_output_schema_is_a_type_error() -> None:
    llm_map = LLMMap(OperatorConfig(), model=MODEL)
    with pytest.raises(TypeError):
        async for _ in llm_map.run([1], "{{ item }}", int):
            pass


async def test_agentic_map_takes_agent_and_lcm_config_and_keeps_the_last_output(
    db_path: str,
) -> None:
    agentic = AgenticMap(OperatorConfig(), model=MODEL)
    batch = await agentic.run_all(
        ["a"], "Do {{ item }}", agent="reviewer", lcm_config=MnesisConfig(), db_path=db_path
    )
    (result,) = batch.results
    assert result.intermediate_outputs[-1] == result.output_text
    assert batch.total_attempts == 1
    sessions = await MnesisSession.list_sessions(db_path)
    assert [s.agent for s in sessions] == ["reviewer"]


def test_config_bounds_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        SessionConfig(doom_loop_threshold=11)
    with pytest.raises(ValueError):
        CompactionConfig(compaction_output_budget=100_001)
    assert StoreConfig(db_path=Path("s.db")).db_path == str(tmp_path / "s.db")
    assert StoreConfig(db_path="~/s.db").db_path == str(Path.home() / "s.db")
    assert StoreConfig(db_path="postgresql://h/db").db_path == "postgresql://h/db"
    assert FileConfig(storage_dir="files").storage_dir == str(tmp_path / "files")
    description = CompactionConfig.model_fields["soft_threshold_fraction"].description
    assert description is not None and description.startswith("[Advanced]")


async def test_db_path_given_twice_is_refused(db_path: str) -> None:
    config = MnesisConfig(store=StoreConfig(db_path=db_path))
    with pytest.raises(ValueError, match="not both"):
        await MnesisSession.create(model=MODEL, config=config, db_path=db_path)


async def test_session_reads_in_the_040_shapes(db_path: str) -> None:
    updates: list[Any] = []
    async with MnesisSession.open(model=MODEL, db_path=db_path, pool=None) as session:
        session.subscribe(MnesisEvent.SESSION_UPDATED, lambda e, p: updates.append(p))
        for n in range(3):
            answer = f"answer {n}: " + "the store keeps every message verbatim. " * 8
            await session.record(f"question {n}", [TextPart(text=answer), TextPart(text="b")])
        assert [m["role"] for m in await session.context_for_next_turn()] == [
            "user",
            "assistant",
        ] * 3
        with_system = await session.context_for_next_turn(include_system=True)
        assert with_system[0] == {"role": "system", "content": session.system_prompt}
        snapshots = session.history()
        assert len(snapshots) == 3 and snapshots == await session.history()
        assert updates[-1]["turn_count"] == 3

        result = await session.compact()
        assert result.level_used >= 1 and result.compacted_message_count > 0
        messages = await session.messages()
        summaries = [m for m in messages if m.is_summary]
        assert len(summaries) == 1 and summaries[0].message.mode == "compaction"
        assert summaries[0].id == result.summary_message_id
        assert messages[-1].is_summary  # after the messages it summarised
        conversation = await session.conversation_messages()
        assert len(conversation) == 6 and not any(m.is_summary for m in conversation)
        reply = conversation[1]
        assert reply.text_content().endswith("verbatim. b")
        assert reply.model_id == MODEL and reply.message.provider_id == "anthropic"
        assert reply.message.agent == "default" and reply.message.parent_id is None
        assert reply.tokens.effective_total() >= 0
        assert reply.message.created_at == reply.message.created_at_ms > 1_600_000_000_000
        assert reply.message.created_datetime.timestamp() * 1000 == pytest.approx(
            reply.message.created_at, abs=1
        )
    reopened = await MnesisSession.load(session.id, db_path=db_path)
    async with reopened:
        assert len(reopened.history()) == 3


async def test_large_file_handler_040_constructor_and_handle_file(
    tmp_path: Path, db_path: str
) -> None:
    big = tmp_path / "big.py"
    big.write_text("def f():\n    return 1\n\n" * 400)
    async with MnesisSession.open(model=MODEL, db_path=db_path) as session:
        base = LargeFileHandler.from_session(session)
        handler = LargeFileHandler(base.store, base.estimator, FileConfig(inline_threshold=100))
        result = await handler.handle_file(big)
        assert isinstance(result, FileHandleResult) and not result.is_inline
        assert result.file_ref is not None and result.file_ref.file_type == "python"
        again = await handler.handle_file(str(big))
        assert again.file_ref is not None
        assert again.file_ref.content_id == result.file_ref.content_id
        inline = await handler.handle_file("note.md", content="# hi\n")
        assert inline.is_inline and inline.inline_content == "# hi\n"


def test_a_message_error_is_0_4_0_s_structured_error() -> None:
    from mnesis.models.message import Message, MessageError

    stored = {"id": "m", "session_id": "s", "seq": 1, "role": "assistant", "created_at": 1}
    failed = Message.model_validate({**stored, "error": "context_overflow: too long"})
    assert failed.error == MessageError(code="context_overflow", message="too long")
    assert str(failed.error) == "context_overflow: too long"
    odd = Message.model_validate({**stored, "error": "disk: full"})
    assert odd.error is not None and (odd.error.code, odd.error.message) == (
        "unknown",
        "disk: full",
    )
    with pytest.raises(ValueError):
        MessageError(code="exploded", message="x")  # type: ignore[arg-type]
