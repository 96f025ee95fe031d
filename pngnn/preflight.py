"""Reachability checks for the servers a command needs, before any work starts.

Without them a dead Prefect or MLflow server shows up minutes later as a page of
traceback from deep inside a client library; here it is one line naming the URL and
the fix.
"""

from __future__ import annotations

import httpx

from pngnn.errors import PngnnError
from pngnn.settings import Settings


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
    """An http(s) MLflow tracking URI must answer; file and sqlite stores need no server."""
    if tracking_uri.startswith(("http://", "https://")) and not _reachable(tracking_uri.rstrip("/") + "/health"):
        raise PngnnError(
            f"cannot reach the MLflow server at MLFLOW_TRACKING_URI={tracking_uri}; start it (`mlflow server`) "
            "or point MLFLOW_TRACKING_URI at a local store such as sqlite:///pngnn-data/mlflow.db"
        )
