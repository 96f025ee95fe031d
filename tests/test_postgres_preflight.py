"""A PostgreSQL URL that cannot be used is one line naming the setting, before any work starts.

Without the check, `prefect server start` with a dead PREFECT_API_DATABASE_CONNECTION_URL
prints a 185-line traceback, and MLflow (server or client) retries a dead database for about
two minutes before its own. Checked against a real throwaway cluster (tests/pg.py): a right
URL passes, a wrong password, a missing database and a closed port each fail with their
reason, and the password never appears in the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pngnn.core.errors import PngnnError
from pngnn.core.preflight import check_database, check_mlflow, is_postgres_url, redact
from tests.pg import PASSWORD, missing_reason, postgres_cluster
from tests.servers import QUIET_ENV, free_port


@pytest.fixture(scope="module")
def cluster():
    reason = missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # .ci/run installs PostgreSQL: CI must never pass by skipping
        pytest.skip(reason)
    with postgres_cluster(("prefect", "mlflow")) as c:
        yield c


def dead_url(driver: str = "postgresql") -> str:
    return f"{driver}://pngnn:{PASSWORD}@127.0.0.1:{free_port()}/mlflow"


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and PASSWORD not in message, message
    return message


def test_postgres_urls_are_recognised_and_redacted():
    assert all(is_postgres_url(u) for u in ("postgresql://h/db", "postgres://h/db", "postgresql+asyncpg://h/db",
                                            "POSTGRESQL+psycopg://u:p@h:1/db"))
    assert not any(is_postgres_url(u) for u in ("sqlite:///x.db", "http://h:5000", "", "postgresql"))
    assert redact("postgresql+asyncpg://u:s3cret@db:5432/prefect") == "postgresql+asyncpg://u:***@db:5432/prefect"
    assert redact("postgresql://u@db/prefect") == "postgresql://u@db/prefect"


def test_a_usable_database_passes_with_either_driver(cluster):
    check_database(cluster.url("prefect", "postgresql+asyncpg"), "PREFECT_API_DATABASE_CONNECTION_URL")
    check_database(cluster.url("mlflow"), "MLFLOW_BACKEND_STORE_URI")


def test_a_wrong_password_names_the_setting_and_the_reason(cluster):
    url = cluster.url("mlflow").replace(PASSWORD, "not-the-password")
    with pytest.raises(PngnnError) as exc:
        check_database(url, "MLFLOW_BACKEND_STORE_URI")
    message = one_line(exc)
    assert "MLFLOW_BACKEND_STORE_URI=postgresql://pngnn:***@127.0.0.1" in message
    assert "password authentication failed" in message and "not-the-password" not in message


def test_a_missing_database_says_so(cluster):
    with pytest.raises(PngnnError) as exc:
        check_database(cluster.url("nope", "postgresql+asyncpg"), "PREFECT_API_DATABASE_CONNECTION_URL")
    assert 'database "nope" does not exist' in one_line(exc)


def test_a_closed_port_fails_at_once_not_after_minutes_of_retries():
    t0 = time.monotonic()
    with pytest.raises(PngnnError) as exc:
        check_mlflow(dead_url())
    message = one_line(exc)
    assert message.startswith("cannot use the PostgreSQL database at MLFLOW_TRACKING_URI=postgresql://pngnn:***@")
    assert "Connection refused" in message and "start PostgreSQL" in message
    assert time.monotonic() - t0 < 15


def test_tracking_setup_checks_a_database_tracking_uri_first(tmp_path):
    from pngnn.core.settings import Settings
    from pngnn.tracking.runs import setup

    settings = Settings(db_path=tmp_path / "pngnn.duckdb", mlflow_uri=dead_url())
    t0 = time.monotonic()
    with pytest.raises(PngnnError, match="MLFLOW_TRACKING_URI"):
        setup(settings, "ml-100k")
    assert time.monotonic() - t0 < 15


def preflight(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in {**os.environ, **QUIET_ENV}.items()
            if k not in ("PREFECT_API_DATABASE_CONNECTION_URL", "MLFLOW_BACKEND_STORE_URI")}
    return subprocess.run([sys.executable, "-m", "pngnn.core.preflight"], env={**full, **env}, capture_output=True,
                          text=True, timeout=60)


def test_preflight_command_checks_the_servers_databases(cluster):
    good = preflight(PREFECT_API_DATABASE_CONNECTION_URL=cluster.url("prefect", "postgresql+asyncpg"),
                     MLFLOW_BACKEND_STORE_URI=cluster.url("mlflow"))
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        f"ok: PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://pngnn:***@127.0.0.1:{cluster.port}/prefect",
        f"ok: MLFLOW_BACKEND_STORE_URI=postgresql://pngnn:***@127.0.0.1:{cluster.port}/mlflow"]
    bad = preflight(PREFECT_API_DATABASE_CONNECTION_URL=dead_url("postgresql+asyncpg"))
    err = bad.stderr.strip()
    assert bad.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot use the PostgreSQL database at PREFECT_API_DATABASE_CONNECTION_URL=")
    assert PASSWORD not in err
    assert "nothing to check" in preflight().stdout  # sqlite defaults: no database server to reach


def test_pngnn_run_with_a_dead_database_tracking_uri_is_one_line(tmp_path):
    from tests.test_cli import assert_one_line_error, run_cli

    url = dead_url()
    proc = run_cli(["run", "--epochs", "1"], tmp_path, MLFLOW_TRACKING_URI=url)
    assert_one_line_error(proc, "MLFLOW_TRACKING_URI=postgresql://pngnn:***@", "Connection refused")
    assert PASSWORD not in proc.stderr
    assert not (tmp_path / "db.duckdb").exists()  # nothing started, nothing written
