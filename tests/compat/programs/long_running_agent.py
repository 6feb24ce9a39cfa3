"""0.4.0-style: create() as a context manager, on_part, events, manual compact()."""

import asyncio
import sys
from typing import Any

from mnesis import CompactionConfig, MnesisConfig, MnesisEvent, MnesisSession
from mnesis.models.message import TextPart


async def main(db_path: str) -> None:
    completed: list[dict[str, Any]] = []
    streamed: list[str] = []

    def on_completed(event: MnesisEvent, payload: dict[str, Any]) -> None:
        completed.append(payload)

    def on_part(part: Any) -> None:
        if isinstance(part, TextPart):
            streamed.append(part.text)

    config = MnesisConfig(compaction=CompactionConfig(compaction_output_budget=5_000, auto=True))
    async with await MnesisSession.create(
        model="anthropic/claude-opus-4-6",
        system_prompt="You plan refactors.",
        config=config,
        db_path=db_path,
    ) as session:
        session.subscribe(MnesisEvent.COMPACTION_COMPLETED, on_completed)
        session.subscribe(MnesisEvent.DOOM_LOOP_DETECTED, lambda e, p: None)
        for task in ["Outline the risks.", "Split models.py how?", "Summarise the plan."]:
            result = await session.send(task, on_part=on_part)
            assert not result.doom_loop_detected
        assert streamed

        checkpoint = await session.compact()
        assert checkpoint.level_used >= 1, checkpoint
        assert checkpoint.compacted_message_count > 0, checkpoint
        assert checkpoint.tokens_before >= 0 and checkpoint.tokens_after >= 0

        messages = await session.messages()
        regular = [m for m in messages if not m.message.is_summary]
        summaries = [m for m in messages if m.message.is_summary]
        assert len(regular) == 6, len(regular)
        assert len(summaries) >= 1, "the checkpoint's summary shows in messages()"
        assert all(m.is_summary for m in summaries)
        conversation = await session.conversation_messages()
        assert [m.id for m in conversation] == [m.id for m in regular]
    assert completed and "level_used" in completed[-1]
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
