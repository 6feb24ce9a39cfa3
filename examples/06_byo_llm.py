"""06 · Bring your own LLM: mnesis keeps the memory, your SDK makes the calls.

python examples/06_byo_llm.py       (no key needed: the "SDK" here is a stub)
"""

import asyncio

from mnesis import MnesisSession, TokenUsage


def my_sdk_call(messages: list[dict[str, object]]) -> tuple[str, TokenUsage]:
    """Stands in for your own client (OpenAI SDK, Anthropic SDK, an HTTP call ...)."""
    reply = f"I see {len(messages)} messages of context."
    return reply, TokenUsage(input=12 * len(messages), output=8)


async def main() -> None:
    async with MnesisSession.open(model="openai/gpt-4o") as session:
        for question in ["Hi, I'm Bob.", "What's my name?", "Thanks!"]:
            # The conversation so far, compacted to fit; the system prompt is yours.
            context = await session.context_for_next_turn()
            messages = [
                {"role": "system", "content": session.system_prompt},
                *context,
                {"role": "user", "content": question},
            ]
            reply, usage = my_sdk_call(messages)
            recorded = await session.record(question, reply, tokens=usage)
            print(f"{question!r} -> {reply!r} (stored as {recorded.assistant_message_id})")
        print("usage so far:", session.token_usage)
        for message in await session.messages():
            print(f"  {message.role}: {message.text_content()}")


if __name__ == "__main__":
    asyncio.run(main())
