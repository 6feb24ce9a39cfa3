"""09 · A real local model through an OpenAI-compatible server (llama.cpp, vLLM, Ollama).

Start one, e.g.:
    python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf \\
        --host 127.0.0.1 --port 8000 --model_alias smollm2
then:
    MNESIS_LOCAL_URL=http://127.0.0.1:8000/v1 python examples/09_local_model.py
Without a server it says so and exits.
"""

import asyncio
import os
import urllib.request

from mnesis import MnesisConfig, MnesisSession
from mnesis.llm.litellm import LiteLLMProvider

URL = os.environ.get("MNESIS_LOCAL_URL", "http://127.0.0.1:8000/v1")


def server_running() -> bool:
    try:
        with urllib.request.urlopen(f"{URL}/models", timeout=2):
            return True
    except OSError:
        return False


async def main() -> None:
    if not server_running():
        print(f"no OpenAI-compatible server at {URL}; start one (see the docstring)")
        return
    config = MnesisConfig.model_validate(
        {
            "model_overrides": {"context_limit": 4096, "max_output_tokens": 256},
            "compaction": {"compaction_output_budget": 512},
        }
    )
    provider = LiteLLMProvider(api_base=URL, api_key="sk-local")
    async with MnesisSession.open(
        model="openai/smollm2", config=config, provider=provider
    ) as session:
        async for event in session.stream("Name three colours."):
            if event.type == "text_delta":
                print(event.text, end="", flush=True)
            else:
                print(f"\nprovider token counts: {event.result.tokens}")


if __name__ == "__main__":
    asyncio.run(main())
