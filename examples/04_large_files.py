"""04 · Large files become references with a structural outline; the content stays on disk.

MNESIS_MOCK_LLM=1 python examples/04_large_files.py
"""

import asyncio
import json
import tempfile
from pathlib import Path

from mnesis import FileRefPart, MnesisSession


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "orders.json"
        data.write_text(
            json.dumps(
                {
                    "orders": [
                        {"id": i, "total": i * 1.5, "items": ["a", "b"]} for i in range(20_000)
                    ]
                }
            )
        )
        note = Path(folder) / "note.txt"
        note.write_text("Ship the orders by Friday.")
        async with MnesisSession.open(model="openai/gpt-4o") as session:
            await session.send("Summarise these files.", files=[data, note])
            context = await session.context_for_next_turn()
            print(context[0]["content"])
            ref = next(p for p in (await session.messages())[0].parts if isinstance(p, FileRefPart))
            described = await session.describe(ref.content_id)
            print(
                f"\n{described.id}: {described.file_type}, {described.token_count:,} tokens, "
                f"file {described.status}"
            )


if __name__ == "__main__":
    asyncio.run(main())
