"""11 · pydantic-ai: mnesis as the agent's history, in one line.

python examples/11_pydantic_ai.py      (needs mnesis[pydantic-ai]; no key: FunctionModel)

The Agent and its tool loop are pydantic-ai's own; only the model is
pydantic-ai's ``FunctionModel`` running a script, so the example runs offline.
With a real model, pass its name (``"openai:gpt-4o"``) instead. Each run is
called without ``message_history``: mnesis is the memory.
"""

import asyncio

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mnesis import MnesisConfig
from mnesis.integrations.pydantic_ai import MnesisHistory

SMALL = MnesisConfig.model_validate(
    {
        "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
        "compaction": {"compaction_output_budget": 500},
    }
)


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for a real model: converts with the tool, then answers from it."""
    last = messages[-1].parts[-1]
    if isinstance(last, ToolReturnPart):
        return ModelResponse(parts=[TextPart(f"That is {last.content}.")])
    if isinstance(last, UserPromptPart) and isinstance(last.content, str):
        amount = int(last.content.split()[-2])
        return ModelResponse(parts=[ToolCallPart("to_euros", {"dollars": amount})])
    return ModelResponse(parts=[TextPart("Noted.")])


async def main() -> None:
    async with MnesisHistory("ledger", model="openai/gpt-4o", config=SMALL) as memory:
        agent = Agent(FunctionModel(script), capabilities=[memory.capability()])

        @agent.tool_plain
        def to_euros(dollars: int) -> str:
            """Convert dollars to euros."""
            return f"{dollars * 0.92:.2f} EUR"

        for run in range(1, 61):
            result = await agent.run(f"run {run}: convert {run * 10} dollars")
            if run % 20 == 0:
                print(f"run {run}: {result.output}")

        session = await memory.mnesis_session()
        breakdown = await session.context_breakdown()
        print(
            f"context: {breakdown.total} tokens (usable {session.usable_tokens}), "
            f"{len(await session.conversation_messages())} messages stored"
        )
        print("grep finds run 1:", bool((await session.grep("run 1:")).matches))
        history = await memory([])  # what the next request would start from
        kinds = [type(m).__name__ for m in history[:3]]
        print("the next run starts from:", kinds, "...", len(history), "messages")


if __name__ == "__main__":
    asyncio.run(main())
