"""05 · Parallel operators: LLMMap with a Pydantic schema, AgenticMap with sub-sessions.

MNESIS_MOCK_LLM=1 python examples/05_parallel_processing.py
"""

import asyncio
import json

from pydantic import BaseModel

from mnesis import AgenticMap, LLMMap, MnesisSession, MockProvider, MockReply
from mnesis.llm.base import LLMRequest


class Sentiment(BaseModel):
    label: str
    score: float


def model(request: LLMRequest) -> MockReply:
    prompt = str(request.messages[-1]["content"])
    if "JSON Schema" in prompt:  # an LLMMap call: reply with schema-valid JSON
        positive = "love" in prompt or "great" in prompt
        data = {"label": "positive" if positive else "negative", "score": 0.9}
        return MockReply(text=json.dumps(data))
    return MockReply(text=f"Reviewed: {prompt[:40]}")


async def main() -> None:
    provider = MockProvider(model)
    reviews = ["I love this library", "Crashes on start", "Great docs", "Too slow for me"]
    batch = await LLMMap(model="openai/gpt-4o", provider=provider).run_all(
        reviews, "Classify the sentiment of this review: {{ item }}", Sentiment
    )
    for result in batch.results:
        print(f"{result.input!r:28} -> {result.output.label} ({result.attempts} attempt)")

    async with MnesisSession.open(model="openai/gpt-4o", provider=provider) as parent:
        agents = await AgenticMap(model="openai/gpt-4o", provider=provider).run_all(
            ["src/app.py", "src/db.py"],
            "Review the module {{ item }} and report problems.",
            parent_session_id=parent.id,
        )
        for result in agents.results:
            print(f"{result.input}: {result.output_text} (sub-session {result.session_id})")
        print("the parent's own context holds none of it:", await parent.messages() == [])


if __name__ == "__main__":
    asyncio.run(main())
