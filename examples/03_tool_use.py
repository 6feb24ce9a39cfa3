"""03 · Tool use: handlers run the loop; tool parts are stored; old outputs become tombstones.

MNESIS_MOCK_LLM=1 python examples/03_tool_use.py
"""

import asyncio
import json

from mnesis import MnesisConfig, MnesisSession, MockProvider, MockReply, MockToolCall
from mnesis.llm.base import LLMRequest

READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
}


def model(request: LLMRequest) -> MockReply:
    """Reads the file the user names, then answers with its size."""
    last = request.messages[-1]
    if last["role"] == "tool":
        return MockReply(text=f"That file has {len(last['content'])} characters.")
    if "<transcript>" in str(last["content"]):
        return MockReply(text="Summary: the user had files read.")
    path = str(last["content"]).split()[-1]
    return MockReply(tool_calls=(MockToolCall("read_file", {"path": path}),))


def read_file(path: str) -> str:
    return f"contents of {path}\n" + "lorem ipsum dolor sit amet " * 300


async def main() -> None:
    config = MnesisConfig.model_validate(
        {"compaction": {"prune_protect_tokens": 2_000, "prune_minimum_tokens": 1_000}}
    )
    async with MnesisSession.open(
        model="openai/gpt-4o", config=config, provider=MockProvider(model)
    ) as session:
        for name in ["a.txt", "b.txt", "c.txt", "d.txt"]:
            result = await session.send(
                f"Please read {name}", tools=[READ_FILE], tool_handlers={"read_file": read_file}
            )
            print(f"{name}: {result.text} ({result.steps} model calls)")
        stored = await session.messages()
        call = stored[1].tool_parts()[0]
        print("stored call:", call.tool_name, json.dumps(call.input), call.status.value)
        compacted = await session.compact()
        print(
            f"pruned {compacted.pruned_tool_outputs} old tool outputs "
            f"({compacted.pruned_tokens} tokens) into tombstones"
        )
        stored = await session.messages()
        print(
            "the original is kept:",
            stored[1].tool_parts()[0].output[:30] + "...",
            "| pruned:",
            stored[1].tool_parts()[0].pruned,
        )


if __name__ == "__main__":
    asyncio.run(main())
