"""Full-text helpers for PostgreSQL: the same words SQLite's index sees.

SQLite's FTS5 ``unicode61 remove_diacritics 2`` tokenizer lower-cases, drops
diacritics and splits on anything that is not a letter or a digit. PostgreSQL's
text-search parser has its own ideas (file paths, URLs, hyphenated words become
single tokens), so the store never lets it parse: it splits the text into words
here and hands PostgreSQL ready ``tsvector`` / ``tsquery`` literals built from
those words. Only letters and digits reach a literal, so quoting is trivial.

A ``tsvector`` keeps positions only up to 16383 and must stay under 1 MB, so a
long body is cut into chunks of at most :data:`CHUNK_WORDS` words (and no word
more than 256 times, the most positions a lexeme keeps) that overlap
by :data:`OVERLAP` words; a phrase of up to that many words still matches
across a cut.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence

CHUNK_WORDS = 12_000
CHUNK_CHARS = 200_000
OVERLAP = 64
MAX_POSITIONS = 256  # per word and chunk, PostgreSQL's limit
MAX_WORD = 400  # characters; PostgreSQL refuses lexemes over 2 KB

_WORD = re.compile(r"[^\W_]+")
# ASCII text's words in one pass: letters lower-cased, digits kept, anything else a space.
_ASCII_FOLD = bytes(
    (c | 0x20 if chr(c).isalpha() else c) if chr(c).isalnum() else 0x20 for c in range(128)
).ljust(256, b" ")


def words(text: str) -> list[str]:
    """The index words of ``text``, in order."""
    if text.isascii():  # nothing to decompose, no combining marks: the same words, faster
        folded = text
        found = text.encode("ascii").translate(_ASCII_FOLD).decode("ascii").split()
    else:
        folded = unicodedata.normalize("NFKD", text.lower())
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
        found = _WORD.findall(folded)
    if len(folded) <= MAX_WORD or max(map(len, found), default=0) <= MAX_WORD:
        return found
    return [w[:MAX_WORD] for w in found]


def _literal(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_chunks(text: str) -> Iterator[str]:
    """``tsvector`` literals covering ``text`` (at least one, maybe empty)."""
    all_words = words(text)
    count = len(all_words)
    if (
        count <= CHUNK_WORDS
        and sum(map(len, all_words)) + count < CHUNK_CHARS
        and (count <= MAX_POSITIONS or max(Counter(all_words).values()) <= MAX_POSITIONS)
    ):
        # One chunk (what the loop below would make), written one entry per word:
        # PostgreSQL merges a lexeme's positions on input, so the stored tsvector is
        # the same. Words hold only letters and digits: nothing to escape.
        yield " ".join([f"'{word}':{n}" for n, word in enumerate(all_words, 1)])
        return
    start = 0
    while True:
        end = start
        chars = 0
        positions: dict[str, list[int]] = {}
        while end < count and end - start < CHUNK_WORDS and chars < CHUNK_CHARS:
            seen = positions.setdefault(all_words[end], [])
            if len(seen) == MAX_POSITIONS:
                break
            seen.append(end - start + 1)
            chars += len(all_words[end]) + 1
            end += 1
        yield " ".join(f"{_literal(w)}:{','.join(map(str, ps))}" for w, ps in positions.items())
        if end >= count:
            return
        start = max(end - OVERLAP, start + 1)


def tsquery(terms: Sequence[str]) -> str | None:
    """A ``tsquery`` literal: the terms' words as a phrase, the last one a prefix;
    ``None`` when the terms hold no words."""
    found = [w for term in terms for w in words(term)]
    if not found:
        return None
    return " <-> ".join(_literal(w) for w in found) + ":*"
