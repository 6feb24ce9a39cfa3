"""The summarisation prompts of levels 1 and 2."""

from __future__ import annotations

STRUCTURED = """You are compacting the history of a conversation between a user and an AI \
assistant so the assistant can continue the work without the original messages.

Write a summary of the transcript below with these sections (omit empty ones):
## Goal
## Constraints and preferences
## Discoveries
## Completed
## In progress
## Remaining
## Files and identifiers
## Other

Keep every fact the assistant will need: names, numbers, decisions, file paths, ids, URLs, \
errors and their fixes. Do not add anything that is not in the transcript. Write at most \
{budget} tokens.

<transcript>
{transcript}
</transcript>"""

AGGRESSIVE = """Compress the transcript below into at most {budget} tokens of terse bullet \
points. Keep only what is needed to continue the work: the goal, decisions, key facts, \
identifiers (paths, ids, URLs) and open tasks. No preamble.

<transcript>
{transcript}
</transcript>"""


def build_prompt(template: str, transcript: str, budget: int) -> str:
    """Fill a prompt; custom prompts may use ``{transcript}`` and ``{budget}``."""
    filled = template.replace("{budget}", str(budget))
    if "{transcript}" not in filled:
        return f"{filled}\n\n<transcript>\n{transcript}\n</transcript>"
    return filled.replace("{transcript}", transcript)
