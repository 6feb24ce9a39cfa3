"""0.4.0-style BYO-LLM: record() turns, rebuild messages from messages() and
context_for_next_turn() (conversation only; the caller adds the system prompt)."""

import asyncio
import sys

from mnesis import MnesisSession, TokenUsage

SYSTEM = "You are a concise science tutor."
ANSWERS = ["Plants make sugar from light.", "In the thylakoids.", "In the stroma."]


async def main(db_path: str) -> None:
    async with await MnesisSession.create(
        model="anthropic/claude-opus-4-6", system_prompt=SYSTEM, db_path=db_path
    ) as session:
        for i, question in enumerate(["What is photosynthesis?", "Where?", "And Calvin?"]):
            history = await session.messages()
            llm_messages = [{"role": m.role, "content": m.text_content()} for m in history]
            llm_messages.append({"role": "user", "content": question})
            assert all(m["role"] in ("user", "assistant") for m in llm_messages)

            context = await session.context_for_next_turn()
            assert all(m["role"] != "system" for m in context), context
            assert len(context) == 2 * i

            result = await session.record(
                user_message=question,
                assistant_response=ANSWERS[i],
                tokens=TokenUsage(input=10 + i, output=5),
            )
            assert result.tokens.input == 10 + i
        assert len(await session.messages()) == 6
        sdk_messages = [{"role": "system", "content": SYSTEM}] + (
            await session.context_for_next_turn()
        )
        assert sum(1 for m in sdk_messages if m["role"] == "system") == 1

        snapshots = session.history()
        assert len(snapshots) == 3
        assert snapshots[-1].context_tokens.total > 0
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
