"""Reachability checks for the servers and databases a command needs, before any work starts.

Without them a dead Prefect or MLflow server shows up minutes later as a page of
traceback from deep inside a client library; here it is one line naming the URL and
the fix. The same holds for PostgreSQL: `prefect server start` with an unreachable
PREFECT_API_DATABASE_CONNECTION_URL prints a 185-line traceback that names neither the
setting nor the fix, and `mlflow server` with an unreachable --backend-store-uri retries
for two minutes before its own. ``python -m pngnn.core.preflight`` checks the databases the
servers are configured with (before `prefect server start` / `mlflow server`), and an
MLFLOW_TRACKING_URI that is a database is checked where the tracking store is opened.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import httpx

from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings


def _reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


def check_prefect_api(api_url: str | None = None) -> None:
    """A configured PREFECT_API_URL must answer; unset means Prefect's temporary local server."""
    url = api_url if api_url is not None else Settings().prefect_api_url
    if url and not _reachable(url.rstrip("/") + "/health"):
        raise PngnnError(
            f"cannot reach the Prefect server at PREFECT_API_URL={url}; start it (`prefect server start`) "
            "or unset PREFECT_API_URL to run on a temporary local server"
        )


def check_mlflow(tracking_uri: str) -> None:
    """An http(s) MLflow tracking URI must answer and a PostgreSQL one accept a connection; file
    and sqlite stores need no server."""
    if is_postgres_url(tracking_uri):
        check_database(tracking_uri, "MLFLOW_TRACKING_URI")
    if tracking_uri.startswith(("http://", "https://")) and not _reachable(tracking_uri.rstrip("/") + "/health"):
        raise PngnnError(
            f"cannot reach the MLflow server at MLFLOW_TRACKING_URI={tracking_uri}; start it (`mlflow server`) "
            "or point MLFLOW_TRACKING_URI at a local store such as sqlite:///pngnn-data/mlflow.db"
        )


def check_dask_scheduler(address: str, timeout: float = 5.0) -> None:
    """The Dask scheduler at ``address`` (PNGNN_DASK_ADDRESS: ``tcp://host:8786``, or
    ``host:port``) accepts a TCP connection, else a one-line PngnnError naming the setting.

    A plain socket, not a Dask client: distributed retries an unreachable scheduler for its
    connect timeout (30 s) and then raises from deep inside its comms, after the flow run has
    started; this says which setting to fix before any task runs."""
    import socket

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise PngnnError(f"PNGNN_DASK_ADDRESS={address} is not a scheduler address",
                         "set PNGNN_DASK_ADDRESS to tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786), or unset it "
                         "for a local cluster")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PngnnError(f"cannot reach the Dask scheduler at PNGNN_DASK_ADDRESS={address} ({reason})",
                         "start it (`dask scheduler`), fix PNGNN_DASK_ADDRESS, or unset it for a local cluster"
                         ) from None


# The servers' own database settings: Prefect's (SQLAlchemy URL, postgresql+asyncpg://...) and
# `mlflow server --backend-store-uri`'s environment variable (postgresql://...).
SERVER_DATABASE_SETTINGS = ("PREFECT_API_DATABASE_CONNECTION_URL", "MLFLOW_BACKEND_STORE_URI")


def is_postgres_url(url: str) -> bool:
    """``postgresql://``, ``postgres://`` or a SQLAlchemy ``postgresql+<driver>://`` URL."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return scheme.split("+")[0] in ("postgresql", "postgres")


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: error messages end up in logs."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))


def check_database(url: str, setting: str, timeout: float = 5.0) -> None:
    """The PostgreSQL database at ``url`` accepts a connection (host up, credentials right,
    database created), else a one-line PngnnError naming ``setting``.

    One libpq connection with psycopg (MLflow's driver), also for Prefect's asyncpg URL: the
    question is whether the server and database are there, not which client asks."""
    try:
        import psycopg
    except ImportError:
        raise PngnnError(f"{setting} is a PostgreSQL URL but the PostgreSQL drivers are not installed",
                         "pip install -e '.[postgres]' (psycopg for MLflow, asyncpg for Prefect)") from None
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    # A SQLAlchemy URL's query belongs to its driver (asyncpg's ssl=..., not libpq's sslmode=...).
    conninfo = urlunsplit(parts._replace(scheme=scheme, query="" if "+" in parts.scheme else parts.query))
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, round(timeout))).close()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise PngnnError(f"cannot use the PostgreSQL database at {setting}={redact(url)}: {reason}",
                         f"start PostgreSQL (docker compose up -d postgres), create the database, or fix {setting}"
                         ) from None


def main() -> None:
    """``python -m pngnn.core.preflight``: check the PostgreSQL databases the servers are configured
    with (PREFECT_API_DATABASE_CONNECTION_URL, MLFLOW_BACKEND_STORE_URI), one line each."""
    checked = 0
    for setting in SERVER_DATABASE_SETTINGS:
        url = os.environ.get(setting, "")
        if not is_postgres_url(url):
            continue
        try:
            check_database(url, setting)
        except PngnnError as exc:
            sys.exit(f"error: {exc}")
        print(f"ok: {setting}={redact(url)}")
        checked += 1
    if not checked:
        print(f"nothing to check: none of {', '.join(SERVER_DATABASE_SETTINGS)} is a PostgreSQL URL")


if __name__ == "__main__":
    main()
