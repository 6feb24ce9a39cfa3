"""07 · Streaming: deltas arrive live; breaking out early still stores the turn.

MNESIS_MOCK_LLM=1 python examples/07_streaming.py
"""

import asyncio
import time

from mnesis import MnesisSession, MockProvider


async def main() -> None:
    slow = MockProvider(
        lambda request: "one two three four five six seven eight nine ten",
        chunks=10,
        chunk_delay=0.05,
    )
    async with MnesisSession.open(model="anthropic/claude-opus-4-6", provider=slow) as session:
        start = time.perf_counter()
        async for event in session.stream("Count to ten."):
            if event.type == "text_delta":
                print(f"[{time.perf_counter() - start:.2f}s] {event.text!r}")
            elif event.type == "turn_complete":
                print(f"Tokens: {event.result.tokens.effective_total()}")

        async for event in session.stream("Count again."):
            if event.type == "text_delta" and "three" in event.text:
                break  # stop reading; the turn still completes and is stored
    resumed = await MnesisSession.load(session.id, provider=slow)
    history = await resumed.messages()
    print(
        f"after breaking out early: {len(history)} messages stored, "
        f"last reply {history[-1].text_content()!r}"
    )
    await resumed.close()


if __name__ == "__main__":
    asyncio.run(main())
