"""The command line's failures are one line naming the problem and the fix, exit code 2."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.servers import BIN, QUIET_ENV, free_port


def run_cli(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **QUIET_ENV, "PNGNN_DB": str(tmp_path / "db.duckdb"),
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **env}
    full_env.pop("PREFECT_API_URL", None)
    full_env.update(env)
    return subprocess.run([str(BIN / "pngnn"), *args], env=full_env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_run_with_a_dead_prefect_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = run_cli(["run", "--epochs", "1"], tmp_path, PREFECT_API_URL=url)
    assert_one_line_error(proc, url, "prefect server start")
    assert not (tmp_path / "db.duckdb").exists()  # nothing started, nothing written


def test_run_with_a_dead_mlflow_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli(["run", "--epochs", "1"], tmp_path, MLFLOW_TRACKING_URI=url)
    assert_one_line_error(proc, url, "mlflow server")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["ingest", "ml-20m"], ["unknown dataset 'ml-20m'", "ml-100k"]),
        (["train", "--method", "bpr-mf"], ["unknown method 'bpr-mf'"]),
        (["train", "--profile", "huge"], ["unknown profile 'huge'", "quick"]),
        (["train", "--dual-bpr", "other"], ["unknown Dual-BPR variant 'other'"]),
        (["report", "--results-dir", "nowhere"], ["no results for ml-1m"]),
    ],
)
def test_bad_arguments(tmp_path, args, needles):
    assert_one_line_error(run_cli(args, tmp_path), *needles)


def test_missing_data_without_download(tmp_path):
    proc = run_cli(["ingest", "ml-100k", "--no-download"], tmp_path, PNGNN_DATA_DIR=str(tmp_path / "empty"))
    assert_one_line_error(proc, "is missing", "PNGNN_DATA_DIR")
