"""10 · OpenAI Agents SDK: mnesis as the agent's Session, in one line.

python examples/10_openai_agents.py      (needs mnesis[agents]; no key: the model is scripted)

The Runner is the SDK's own; only the model is a stand-in, so the example runs
offline. With a real model, drop ``ScriptedModel`` and give the Agent a model
name (and your OPENAI_API_KEY). A small window makes compaction show early.
"""

import asyncio
import json
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from mnesis import MnesisConfig
from mnesis.integrations.openai_agents import MnesisAgentsSession

set_tracing_disabled(True)  # the example sends nothing anywhere

SMALL = MnesisConfig.model_validate(
    {
        "model_overrides": {"context_limit": 4_000, "max_output_tokens": 500},
        "compaction": {"compaction_output_budget": 500},
    }
)


@function_tool
def stock_level(item: str) -> str:
    """How many of an item are in the warehouse."""
    return json.dumps({"item": item, "units": 40 + len(item), "aisle": len(item) % 7})


class ScriptedModel(Model):
    """Stands in for a real model: looks the item up, then answers from the tool."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any):
        last = input[-1] if isinstance(input, list) else {"content": input}
        usage = Usage(requests=1, input_tokens=120, output_tokens=15, total_tokens=135)
        if last.get("type") == "function_call_output":
            found = json.loads(last["output"])
            text = f"{found['units']} units of {found['item']}, aisle {found['aisle']}."
            reply = ResponseOutputText(text=text, annotations=[], type="output_text")
            message = ResponseOutputMessage(
                id="msg", content=[reply], role="assistant", status="completed", type="message"
            )
            return ModelResponse(output=[message], usage=usage, response_id=None)
        item = str(last.get("content", "")).rsplit(" ", 1)[-1].strip("?")
        call = ResponseFunctionToolCall(
            arguments=json.dumps({"item": item}),
            call_id=f"call_{item}",
            name="stock_level",
            type="function_call",
        )
        return ModelResponse(output=[call], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def main() -> None:
    agent = Agent(
        name="clerk", instructions="Answer briefly.", model=ScriptedModel(), tools=[stock_level]
    )
    items = ["bolts", "washers", "hinges", "brackets", "rivets", "springs"]
    async with MnesisAgentsSession("warehouse", model="openai/gpt-4o", config=SMALL) as memory:
        for turn in range(1, 61):
            item = items[turn % len(items)]
            result = await Runner.run(agent, f"turn {turn}: stock of {item}?", session=memory)
            if turn % 20 == 0:
                print(f"turn {turn}: {result.final_output}")

        session = await memory.mnesis_session()  # the mnesis session behind it
        breakdown = await session.context_breakdown()
        print(
            f"context: {breakdown.total} tokens (usable {session.usable_tokens}), "
            f"{len(await session.messages())} messages stored"
        )
        found = await session.grep("turn 1:")
        print("grep finds turn 1:", bool(found.matches))

        print("pop returns the last item:", await memory.pop_item())
        await memory.clear_session()
        print("after clear_session, get_items():", await memory.get_items())
        print("and the log still has turn 1:", bool((await session.grep("turn 1:")).matches))


if __name__ == "__main__":
    asyncio.run(main())
