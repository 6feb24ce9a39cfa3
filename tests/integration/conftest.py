"""Fixtures for integration tests against a real local model server.

``llama_server`` starts ``python -m llama_cpp.server`` with SmolLM2-135M once per
test session and yields its OpenAI-compatible base URL
(``http://127.0.0.1:PORT/v1``; model name ``smollm2``, i.e. ``openai/smollm2``
for litellm).

If ``llama_cpp`` or the model package is not installed the tests are skipped,
except when ``CI=true``, where that is a hard failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # works regardless of pytest's --import-mode
    sys.path.insert(0, str(_HERE))

from llama_server import (  # noqa: E402
    MODEL_ALIAS,
    LlamaServer,
    LlamaServerError,
    find_model_file,
    llama_cpp_available,
)

INSTALL_HINT = "install the 'server' extra: pip install -e '.[dev,server]'"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true but {reason} ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: test talks to a real local llama-cpp model server"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a running SmolLM2 server."""
    if not llama_cpp_available():
        _unavailable("llama_cpp (llama-cpp-python[server]) cannot be imported")
    try:
        model = find_model_file()
    except LlamaServerError as exc:
        _unavailable(str(exc))
        raise  # unreachable; keeps type checkers happy

    server = LlamaServer(model)
    try:
        server.start()
    except LlamaServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_model() -> str:
    """litellm model string for the fixture server."""
    return f"openai/{MODEL_ALIAS}"
