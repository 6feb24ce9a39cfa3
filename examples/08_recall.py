"""08 · Recall: grep, describe, expand — and the model using them itself.

MNESIS_MOCK_LLM=1 python examples/08_recall.py
"""

import asyncio

from mnesis import MnesisConfig, MnesisSession

SMALL = MnesisConfig.model_validate(
    {
        "model_overrides": {"context_limit": 8_000, "max_output_tokens": 1_000},
        "compaction": {"compaction_output_budget": 1_000},
    }
)


async def main() -> None:
    async with MnesisSession.open(model="openai/gpt-4o", config=SMALL) as session:
        await session.record("The staging password is tangerine-42.", "Noted.")
        for i in range(80):
            await session.record(f"Status update {i}: " + "all systems nominal. " * 12, "OK.")
        await session.compact()

        found = await session.grep("staging password")
        match = found[0]
        print(f"grep -> {match.message_id} (#{match.seq}), summarised in {match.summary_id}")
        described = await session.describe(match.summary_id)
        print(
            f"describe -> {described.node_kind} node covering messages "
            f"#{described.first_seq}-#{described.last_seq}"
        )
        page = await session.expand(match.summary_id, limit=1)
        print(f"expand -> {page.messages[0].text_content()!r} (of {page.total})")
        print(
            "memory tools for the model:", [t["function"]["name"] for t in session.memory_tools()]
        )


if __name__ == "__main__":
    asyncio.run(main())
