"""MCP · An assistant searching stored sessions through `mnesis mcp`.

Stores a conversation whose first turn is compacted away, then does what an
MCP-capable assistant does: starts `mnesis mcp --db ...` over stdio with the
MCP SDK's client, lists the tools and calls them. Needs `pip install 'mnesis[mcp]'`.

MNESIS_MOCK_LLM=1 python examples/12_mcp_server.py [--db PATH]
"""

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from mnesis import MnesisConfig, MnesisSession

SMALL = MnesisConfig.model_validate(
    {
        "model_overrides": {"context_limit": 8_000, "max_output_tokens": 1_000},
        "compaction": {"compaction_output_budget": 1_000},
    }
)


async def store_a_conversation(db: str) -> str:
    async with MnesisSession.open(model="openai/gpt-4o", config=SMALL, db_path=db) as session:
        await session.record("The staging password is tangerine-42.", "Noted.")
        for i in range(80):
            await session.record(f"Status update {i}: " + "all systems nominal. " * 12, "OK.")
        await session.compact()
        return session.id


async def ask_like_an_assistant(db: str, session_id: str) -> None:
    # What an assistant's MCP config says: {"command": "mnesis", "args": ["mcp", "--db", db]}
    server = StdioServerParameters(command=sys.executable, args=["-m", "mnesis", "mcp", "--db", db])
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, read_timeout_seconds=60) as client,
    ):
        await client.initialize()
        tools = await client.list_tools()
        print("tools:", [tool.name for tool in tools.tools])

        async def call(name: str, **arguments: object) -> str:
            result = await client.call_tool(name, arguments)
            text = "".join(c.text for c in result.content if c.type == "text")
            return ("error: " if result.is_error else "") + text

        print("list_sessions ->", (await call("list_sessions")).splitlines()[0])
        found = await call("lcm_grep", session_id=session_id, pattern="staging password")
        print("lcm_grep ->", found.splitlines()[0])
        summary_id = found.split("in summary ")[1].split("]")[0]
        page = await call("lcm_expand", session_id=session_id, summary_id=summary_id)
        print("lcm_expand ->", page.splitlines()[1])
        print("unknown session ->", await call("lcm_grep", session_id="sess_x", pattern="x"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None, help="database file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or str(Path(folder) / "sessions.db")
        session_id = await store_a_conversation(db)
        await ask_like_an_assistant(db, session_id)


if __name__ == "__main__":
    asyncio.run(main())
