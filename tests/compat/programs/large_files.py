"""0.4.0-style: LargeFileHandler.handle_file() -> FileHandleResult, cache hit."""

import asyncio
import json
import os
import sys
import tempfile

from mnesis import MnesisConfig, MnesisSession
from mnesis.files.handler import LargeFileHandler
from mnesis.models.config import FileConfig

SOURCE = "class Pipeline:\n    def run(self):\n        return 1\n\n\ndef main():\n    pass\n" * 60
DATA = json.dumps({"database": {"host": "db"}, "rows": list(range(400))}, indent=2)


async def main(db_path: str) -> None:
    config = MnesisConfig(file=FileConfig(inline_threshold=500))
    async with MnesisSession.open(
        model="anthropic/claude-opus-4-6", config=config, db_path=db_path
    ) as session:
        handler = LargeFileHandler.from_session(session)
        with tempfile.TemporaryDirectory() as tmp:
            py_path = os.path.join(tmp, "pipeline.py")
            json_path = os.path.join(tmp, "conf.json")
            small = os.path.join(tmp, "small.txt")
            for path, text in ((py_path, SOURCE), (json_path, DATA), (small, "hello")):
                with open(path, "w") as f:
                    f.write(text)
            first = await handler.handle_file(py_path)
            assert not first.is_inline
            assert first.file_ref.file_type == "python"
            assert first.file_ref.token_count > 500
            assert "Pipeline" in first.file_ref.exploration_summary
            assert not (await handler.handle_file(json_path)).is_inline
            again = await handler.handle_file(py_path)
            assert again.file_ref.content_id == first.file_ref.content_id
            inline = await handler.handle_file(small)
            assert inline.is_inline and "hello" in inline.inline_content
            given = await handler.handle_file("virtual.md", content="# Title\n")
            assert given.is_inline
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
