"""The embedder protocol: one required method, ``embed``.

An embedder turns texts into vectors whose dot product says how close two
texts are in meaning. mnesis stores the vectors beside the log and uses them
for meaning-based recall (``session.search``). ``name`` identifies the model
(and anything that changes its vectors): vectors stored under another name
are not compared with new ones, so a model change re-embeds what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one unit-length vector of ``dimensions`` floats per text out."""

    @property
    def name(self) -> str:
        """The model's identity, stored with each vector (e.g. ``"all-MiniLM-L6-v2"``)."""
        ...

    @property
    def dimensions(self) -> int:
        """How many floats each vector has."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Must not block the event loop."""
        ...
