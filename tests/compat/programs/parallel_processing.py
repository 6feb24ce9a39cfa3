"""0.4.0-style: LLMMap with a Pydantic schema, AgenticMap sub-sessions."""

import asyncio
import os
import sys

from pydantic import BaseModel

from mnesis import AgenticMap, LLMMap
from mnesis.models.config import OperatorConfig


class Metadata(BaseModel):
    topic: str
    key_findings: list[str]
    relevance_score: int


DOCS = [{"id": i, "title": f"Paper {i}", "abstract": f"About topic {i}."} for i in range(5)]
REPOS = [{"name": "etl", "description": "CSV pipeline"}, {"name": "gw", "description": "API"}]


async def main(tmp: str) -> None:
    llm_map = LLMMap(OperatorConfig(llm_map_concurrency=5, max_retries=2))
    seen = 0
    async for result in llm_map.run(
        inputs=DOCS,
        prompt_template="Title: {{ item['title'] }}\nAbstract: {{ item['abstract'] }}",
        output_schema=Metadata,
        model="anthropic/claude-haiku-3-5",
        temperature=0.0,
    ):
        seen += 1
        assert result.input["id"] in range(5)
        assert result.attempts >= 1
    assert seen == 5

    batch = await llm_map.run_all(
        inputs=DOCS,
        prompt_template="{{ item['title'] }}",
        output_schema=Metadata,
        model="anthropic/claude-haiku-3-5",
    )
    assert batch.total == 5
    assert len(batch.successes) + len(batch.failures) == batch.total
    assert batch.total_attempts >= 5

    agentic = AgenticMap(OperatorConfig(agentic_map_concurrency=2, max_retries=1))
    results = []
    async for result in agentic.run(
        inputs=REPOS,
        agent_prompt_template="Review {{ item['name'] }}: {{ item['description'] }}",
        model="anthropic/claude-opus-4-6",
        max_turns=2,
        db_path=os.path.join(tmp, "agentic.db"),
    ):
        results.append(result)
        assert result.session_id
        assert isinstance(result.output_text, str)
    assert sum(r.token_usage.effective_total() for r in results) > 0

    batch2 = await agentic.run_all(
        inputs=REPOS,
        agent_prompt_template="Review {{ item['name'] }}",
        model="anthropic/claude-opus-4-6",
        max_turns=1,
        db_path=os.path.join(tmp, "agentic2.db"),
    )
    assert batch2.total_attempts == 2
    assert len(batch2.successes) + len(batch2.failures) == 2
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
