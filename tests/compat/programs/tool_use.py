"""0.4.0-style: record() with ToolPart/ToolStatus(state=...), tombstones after compact()."""

import asyncio
import json
import sys

from mnesis import CompactionConfig, MnesisConfig, MnesisSession
from mnesis.models.message import TextPart, ToolPart, ToolStatus


async def main(db_path: str) -> None:
    config = MnesisConfig(
        compaction=CompactionConfig(prune=True, prune_protect_tokens=50, prune_minimum_tokens=10)
    )
    async with await MnesisSession.create(
        model="anthropic/claude-opus-4-6",
        system_prompt="You explore a file system with tools.",
        config=config,
        db_path=db_path,
    ) as session:
        calls = [
            ("list_directory", {"path": "/srv"}, "a.txt b.txt c.log " * 20, None),
            ("read_file", {"path": "/srv/c.log"}, "INFO started\nERROR timeout\n" * 30, None),
            ("read_file", {"path": "/srv/conf.json"}, json.dumps({"pool": 10}), None),
            ("list_directory", {"path": "/srv/private"}, None, "PermissionError: denied"),
        ]
        for n, (name, args, output, error) in enumerate(calls, 1):
            part = ToolPart(
                tool_name=name,
                tool_call_id=f"call_{n:03d}",
                input=args,
                output=output,
                error_message=error,
                status=ToolStatus(state="error" if error else "completed"),
            )
            assert part.compacted_at is None
            assert part.is_protected is False
            await session.record(
                user_message=f"Step {n}, please.",
                assistant_response=[part, TextPart(text=f"Done with step {n}.")],
            )

        states = []
        for mwp in await session.messages():
            for tp in mwp.parts:
                if isinstance(tp, ToolPart):
                    states.append(tp.status.state)
        assert states == ["completed", "completed", "completed", "error"], states

        result = await session.compact()
        print("level", result.level_used, "compacted", result.compacted_message_count)
        assert result.level_used >= 1

        after = await session.messages()
        tombstoned = [
            p
            for m in after
            for p in m.parts
            if isinstance(p, ToolPart) and p.compacted_at is not None
        ]
        summaries = [m for m in after if m.message.is_summary]
        assert summaries, "a summary is listed after compact()"
        text = next((p.text for p in summaries[-1].parts if isinstance(p, TextPart)), "")
        assert text
        print("tombstoned", len(tombstoned))
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
