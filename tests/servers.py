"""Real servers for integration tests, started on free loopback ports and stopped after.

Nothing here is a test double: ``prefect server start`` and ``mlflow server`` are the
real programs, run as subprocesses with telemetry off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
QUIET_ENV = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Flows in subprocesses train on ML-100K: one torch thread, so a busy second core cannot
    # stall OpenMP threads waiting for each other (see tests/conftest.py).
    "OMP_NUM_THREADS": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout}s: {log.read_text()[-2000:]}")


@contextmanager
def running(cmd: list[str], health_url: str, env: dict[str, str], log: Path, timeout: float = 180,
            cwd: Path | None = None, unset: tuple[str, ...] = ()) -> Iterator[None]:
    """``cmd`` running until the block ends, once ``health_url`` answers 200; in ``cwd``, with
    ``env`` over this process's environment, less the variables named in ``unset``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in {**os.environ, **QUIET_ENV, **env}.items() if k not in unset}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_http(health_url, proc, timeout, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def prefect_server(home: Path, database_url: str | None = None, timeout: float = 180) -> Iterator[str]:
    """A real Prefect server with its own PREFECT_HOME (sqlite there, or the SQLAlchemy
    ``database_url``: postgresql+asyncpg://...); yields its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_API_HOST": "127.0.0.1",
           "PREFECT_SERVER_API_PORT": str(port), "PREFECT_UI_ENABLED": "false"}
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with running(cmd, f"{api}/health", env, home / "prefect-server.log", timeout=timeout):
        yield api


@contextmanager
def prefect_api_in_process(home: Path) -> Iterator[str]:
    """A real Prefect server that flows run in this process report to: its API URL set for the
    block. Before the server stops, this process's Prefect log and event workers are drained:
    left running, they retry a dead server at interpreter exit and hold pytest open for minutes."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with prefect_server(home) as api, temporary_settings({PREFECT_API_URL: api}):
        try:
            yield api
        finally:
            for worker in (APILogWorker, EventsWorker):
                worker.drain_all(timeout=60)


@contextmanager
def mlflow_server(root: Path, backend_store_uri: str | None = None, timeout: float = 180) -> Iterator[str]:
    """A real MLflow tracking server (sqlite backend, or ``backend_store_uri``: postgresql://...)
    serving the artifacts it stores under ``root/artifacts`` (proxied); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", backend_store_uri or f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts",
           "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    with running(cmd, f"{url}/health", {}, root / "mlflow-server.log", timeout=timeout):
        yield url


@contextmanager
def files_over_http(folder: Path) -> Iterator[str]:
    """A real HTTP server on a free loopback port serving ``folder`` (as GroupLens serves its
    zips); yields its base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no request lines on the test's stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
