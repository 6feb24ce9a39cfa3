"""Records of meaning-based recall's storage: what to embed, what is stored.

Vectors live in the store beside the log, so they survive restarts and move
with the data. Each is keyed by the embedder's name and an *item*: a body of
the full-text index (a part's text or a tool call's result, named ``b<key>``
with the index's key) or a summary (named by its id), and a chunk number
(long texts are embedded a chunk at a time). A stored row says the item is
done for that embedder: a crash or a model change re-embeds only what has no
row. A vector travels as little-endian float32 bytes; an empty one records an
item with nothing to embed (an empty text).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

_MAX_NAME = 200


def body_item(key: int) -> str:
    """The item name of a full-text index body (``part_id * 2`` or ``part_id * 2 + 1``)."""
    return f"b{key}"


def vector_bytes(vector: Sequence[float]) -> bytes:
    """A vector as little-endian float32 bytes."""
    return struct.pack(f"<{len(vector)}f", *vector)


def vector_from_bytes(data: bytes) -> tuple[float, ...]:
    """The floats of :func:`vector_bytes`' output."""
    if len(data) % 4:
        raise ValueError(f"a stored vector has {len(data)} bytes, not a multiple of 4")
    return struct.unpack(f"<{len(data) // 4}f", data)


def check_embedder_name(name: str) -> str:
    """``name`` if it can key stored vectors, else ``ValueError``."""
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME or "\0" in name:
        raise ValueError(f"an embedder name must be 1 to {_MAX_NAME} characters: {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class EmbeddingTask:
    """A text that has no vector yet under some embedder."""

    session_id: str
    item: str  # "b<key>" or a summary id
    message_id: str | None  # None for a summary
    text: str


@dataclass(frozen=True, slots=True)
class EmbeddingBacklog:
    """What a scan of a session's messages after some sequence number found.

    ``tasks``: bodies without a vector; ``last_seq``: the last message scanned
    (the next scan starts after it); ``first_open_seq``: the first scanned
    message whose tool call still awaits its result (a later fill adds a body);
    ``last_message_id``: the id of the message at ``last_seq`` (None when none was
    scanned): if another is there later, the latest messages were erased and
    replaced (an erasure keeps sequence numbers 1..n).
    """

    tasks: tuple[EmbeddingTask, ...]
    last_seq: int
    first_open_seq: int | None
    last_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewEmbedding:
    """One chunk's vector to store (``vector`` empty: the item has nothing to embed)."""

    session_id: str
    item: str
    chunk: int
    message_id: str | None
    vector: bytes


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    """A stored vector, with the load order (``id``) a cache reads on from."""

    id: int
    item: str
    message_id: str | None
    vector: bytes
