"""01 · A basic session: create, send, watch compaction, close.

MNESIS_MOCK_LLM=1 python examples/01_basic_session.py
"""

import asyncio

from mnesis import MnesisSession
from mnesis.events.bus import MnesisEvent


async def main() -> None:
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6",
        system_prompt="You are a helpful assistant.",
    ) as session:
        session.subscribe(MnesisEvent.COMPACTION_COMPLETED, lambda e, p: print("Compacted!", p))
        result = await session.send("Explain the GIL in Python.")
        print(result.text)
        print(f"Tokens used: {result.tokens.effective_total()}, cost ${result.cost:.6f}")
        if result.compaction_triggered:
            print("Compaction ran in the background — context is fresh again.")
        print(f"Session {session.id} is stored; MnesisSession.load() resumes it.")


if __name__ == "__main__":
    asyncio.run(main())
