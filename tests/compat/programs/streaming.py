"""0.4.0-style: stream() yields TextDelta then TurnComplete."""

import asyncio
import sys

from mnesis import MnesisSession, TextDelta, TurnComplete


async def main(db_path: str) -> None:
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6", system_prompt="Be brief.", db_path=db_path
    ) as session:
        for question in ["What is an event loop?", "Name a benefit."]:
            text, total = "", 0
            async for event in session.stream(question):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, TurnComplete):
                    total = event.result.tokens.effective_total()
            assert text and total > 0
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
