"""0.4.0-style: open(), send() in a loop, compaction flag, summaries in messages()."""

import asyncio
import sys

from mnesis import CompactionConfig, MnesisConfig, MnesisSession


async def main(db_path: str) -> None:
    config = MnesisConfig(compaction=CompactionConfig(compaction_output_budget=10_000, auto=True))
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6",
        system_prompt="You answer in one line.",
        config=config,
        db_path=db_path,
    ) as session:
        for question in ["What is a mutex?", "And a semaphore?", "Which is simpler?"]:
            result = await session.send(question)
            assert result.text
            assert result.tokens.effective_total() > 0
            print(result.finish_reason, result.compaction_triggered)
        assert session.token_usage.effective_total() > 0
        messages = await session.messages()
        summaries = sum(1 for m in messages if m.message.is_summary)
        assert len(messages) - summaries == 6, len(messages)
        stamps = [m.message.created_at for m in messages]  # Unix milliseconds
        assert all(isinstance(t, int) and t > 1_600_000_000_000 for t in stamps), stamps
        assert all(m.message.error is None for m in messages)
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
