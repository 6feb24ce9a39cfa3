"""The three levels of summarisation, and what every summary keeps.

Level 1 asks the compaction model for a structured summary, level 2 for an
aggressive one; level 3 is a deterministic truncation that needs no model and
always fits its budget. A level whose output is not smaller than its input
(or that fails) hands over to the next, so a summary is always produced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence

from mnesis.context import render_summary
from mnesis.llm.base import LLMProvider, LLMRequest, complete
from mnesis.models.message import FileRefPart, TextPart, TokenUsage, ToolPart
from mnesis.store.base import ContextEntry
from mnesis.tokens import TokenEstimator

logger = logging.getLogger("mnesis.compaction")

_URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+")
_PATH = re.compile(r"(?<![\w/])(?:~?/)?(?:[\w.-]+/)+[\w.-]+\.[A-Za-z0-9]{1,8}\b")
_FILE_ID = re.compile(r"\bfile_[0-9a-f]{12,64}\b")
MAX_IDENTIFIERS = 30
MAX_FOOTER_CHARS = 1_500


def transcript_of(entries: Sequence[ContextEntry]) -> list[str]:
    """One plain-text block per entry: what the summariser reads."""
    blocks = []
    for entry in entries:
        if entry.summary is not None:
            blocks.append(render_summary(entry.summary))
            continue
        lines = [f"[#{entry.seq} {entry.role}]"]
        for part in entry.parts:
            if isinstance(part, TextPart):
                lines.append(part.text)
            elif isinstance(part, FileRefPart):
                lines.append(
                    f"[file {part.content_id} {part.path} ({part.file_type})] "
                    f"{part.exploration_summary}"
                )
            elif isinstance(part, ToolPart):
                lines.append(f"[tool call {part.tool_name} {json.dumps(part.input, default=str)}]")
                if part.output is not None:
                    lines.append(f"[tool result] {part.output}")
                elif part.error_message is not None:
                    lines.append(f"[tool error] {part.error_message}")
        blocks.append("\n".join(lines))
    return blocks


def identifiers_in(entries: Sequence[ContextEntry]) -> list[str]:
    """File ids, file paths and URLs in the entries, newest first, without repeats."""
    found: list[str] = []
    seen: set[str] = set()
    for entry in reversed(entries):
        texts: list[str] = []
        if entry.summary is not None:
            texts.append(entry.summary.text)
        for part in entry.parts:
            if isinstance(part, FileRefPart):
                texts += [part.content_id, part.path]
            elif isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolPart):
                texts += [json.dumps(part.input, default=str), part.output or ""]
        for text in texts:
            for pattern in (_FILE_ID, _URL, _PATH):
                for match in pattern.findall(text):
                    token = match.rstrip(".,;:")
                    if token and token not in seen:
                        seen.add(token)
                        found.append(token)
    return found


def with_identifier_footer(summary: str, identifiers: Sequence[str]) -> str:
    """Append the identifiers the summary text lost, bounded, newest first."""
    missing = [i for i in identifiers if i not in summary][:MAX_IDENTIFIERS]
    if not missing:
        return summary
    footer, used = [], 0
    for identifier in missing:
        if used + len(identifier) + 2 > MAX_FOOTER_CHARS:
            break
        footer.append(identifier)
        used += len(identifier) + 2
    return f"{summary}\n\nIdentifiers from the summarised messages: {', '.join(footer)}"


def truncate(blocks: Sequence[str], budget: int, estimator: TokenEstimator) -> str:
    """Level 3: keep the head of every block within ``budget`` tokens, no model needed."""
    budget = max(budget, 1)
    chars = max(budget * 3, 16)
    per_block = max(chars // max(len(blocks), 1), 24)
    kept: list[str] = []
    omitted = 0
    used = 0
    for block in blocks:
        piece = " ".join(block.split())
        piece = piece if len(piece) <= per_block else piece[: per_block - 1] + "…"
        if used + len(piece) > chars:
            omitted += 1
            continue
        kept.append(piece)
        used += len(piece) + 1
    text = "\n".join(kept)
    if omitted:
        text += f"\n[{omitted} more messages omitted; expand this summary to read them]"
    while estimator.estimate(text) > budget and len(text) > 1:
        text = text[: max(1, int(len(text) * 0.8))]
    return text


def chunk_blocks(blocks: Sequence[str], cap_tokens: int, estimator: TokenEstimator) -> list[str]:
    """Group blocks into chunks of at most ``cap_tokens``; an oversized block is cut."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for block in blocks:
        tokens = estimator.estimate(block)
        if tokens > cap_tokens:
            block = block[: cap_tokens * 3]
            tokens = estimator.estimate(block)
        if current and size + tokens > cap_tokens:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(block)
        size += tokens
    if current:
        chunks.append("\n\n".join(current))
    return chunks


async def llm_summary(
    provider: LLMProvider,
    model: str,
    prompt_template: str,
    chunks: Sequence[str],
    budget: int,
    *,
    seconds: float,
    usage: list[tuple[TokenUsage, float | None]] | None = None,
) -> str:
    """Summarise each chunk with the compaction model and join the results."""
    from mnesis.compaction.prompts import build_prompt

    parts = []
    per_chunk = max(budget // max(len(chunks), 1), 64)
    for chunk in chunks:
        request = LLMRequest(
            model=model,
            messages=[{"role": "user", "content": build_prompt(prompt_template, chunk, per_chunk)}],
            max_tokens=per_chunk,
            temperature=0.0,
        )
        async with asyncio.timeout(seconds):
            reply = await complete(provider, request)
        if usage is not None and reply.usage is not None:
            usage.append((reply.usage, reply.cost))
        text = reply.text.strip()
        if not text:
            raise ValueError("the compaction model returned an empty summary")
        parts.append(text)
    return "\n\n".join(parts)
