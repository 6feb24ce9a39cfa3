"""Token estimation that works offline.

Exact counts come from tiktoken, using the encodings that litellm ships inside
its package (its tokenizer folder is a valid tiktoken cache), so nothing is
downloaded. The encoding follows the model family. When tiktoken or the
encoding file is missing, a character-class heuristic is used that errs on the
high side, notably for CJK text where a naive ``len/4`` undercounts badly.

Counts are computed once per stored part and kept; history is never
re-tokenised on a turn.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import math
import os
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger("mnesis.tokens")

# Per-message framing tokens of the chat formats (role markers, separators).
MESSAGE_OVERHEAD = 4

_TIKTOKEN_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "p50k_base": "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken",
}
_O200K_MARKERS = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4")
_P50K_MARKERS = ("davinci", "curie", "babbage", "code-cushman")


class _Encoding(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


def encoding_for_model(model: str | None) -> str:
    """The tiktoken encoding that best approximates ``model``'s tokenizer."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    if any(name.startswith(m) or f"-{m}" in name for m in _O200K_MARKERS):
        return "o200k_base"
    if any(m in name for m in _P50K_MARKERS):
        return "p50k_base"
    return "cl100k_base"


def _litellm_tokenizer_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


@functools.cache
def _load_encoding(name: str) -> _Encoding | None:
    """Load a tiktoken encoding from a local cache only; None when unavailable offline."""
    try:
        import tiktoken
    except ImportError:
        return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir:
        folder = _litellm_tokenizer_dir()
        if folder is None:
            return None
        cache_dir = str(folder)
    cache_key = hashlib.sha1(_TIKTOKEN_URLS[name].encode()).hexdigest()
    if not (Path(cache_dir) / cache_key).is_file():
        logger.info("tiktoken encoding %s not cached offline; using the heuristic", name)
        return None
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    try:
        encoding: _Encoding = tiktoken.get_encoding(name)
        return encoding
    except Exception:  # a corrupt cache file must not break counting
        logger.warning("could not load tiktoken encoding %s; using the heuristic", name)
        return None
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)


def heuristic_count(text: str) -> int:
    """Estimate tokens from character classes, never undercounting CJK text.

    ASCII runs cost about a token per 4 characters; CJK ideographs, kana and
    hangul cost 1.5 tokens each (BPE vocabularies split most of them into one
    or two tokens); other non-ASCII characters cost one token each.
    """
    if not text:
        return 0
    ascii_chars = 0
    cjk = 0
    other = 0
    for ch in text:
        code = ord(ch)
        if code < 128:
            ascii_chars += 1
        elif 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF:
            cjk += 1
        else:
            other += 1
    return math.ceil(ascii_chars / 4 + cjk * 1.5 + other)


class TokenEstimator:
    """Counts tokens of text for one model family.

    Args:
        model: The model whose tokenizer to approximate; ``None`` means cl100k.
        heuristic_only: Skip tiktoken entirely (fast, approximate).
    """

    def __init__(self, model: str | None = None, *, heuristic_only: bool = False) -> None:
        self.model = model
        self.encoding_name = encoding_for_model(model)
        self._encoding = None if heuristic_only else _load_encoding(self.encoding_name)

    @property
    def exact(self) -> bool:
        """True when counts come from a real tokenizer rather than the heuristic."""
        return self._encoding is not None

    def for_model(self, model: str | None) -> TokenEstimator:
        """An estimator for another model (shares loaded encodings)."""
        return TokenEstimator(model, heuristic_only=self._encoding is None)

    def estimate(self, text: str) -> int:
        """Tokens in ``text``."""
        if not text:
            return 0
        if self._encoding is not None:
            return len(self._encoding.encode(text, disallowed_special=()))
        return heuristic_count(text)

    def estimate_message(self, text: str) -> int:
        """Tokens of a chat message carrying ``text``, framing included."""
        return self.estimate(text) + MESSAGE_OVERHEAD
