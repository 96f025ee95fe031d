"""The multi-machine stack for real: PostgreSQL, both servers on it, prefect.yaml on a work pool, a worker.

Started here, in this order, on free 127.0.0.1 ports, and stopped (and deleted) at the end:

1. a throwaway PostgreSQL cluster (tests/pg.py) with the databases ``prefect`` and ``mlflow``;
2. ``prefect server start`` with PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...;
3. ``mlflow server --backend-store-uri postgresql://... --serve-artifacts --artifacts-destination``;
4. ``python -m flows.workpool check`` and ``deploy`` before the pool exists (both must refuse, in
   one line, with nothing deployed), ``prefect work-pool create pngnn --type process``, ``check``
   and ``deploy`` again (with a PNGNN_CODE_DIR in the deployer's environment, which must not leak
   into the deployments);
5. ``python -m flows.workpool worker`` (a real ``prefect worker start --pool pngnn``) started
   from a folder outside the checkout, so only the pull step can find the code;
6. ``prefect deployment run 'pipeline/quick' --watch`` (most-popular only: no training time, no LLM).

Then the run is read back three ways: the Prefect API, the MLflow REST API, and the two
databases themselves with psql (so "on PostgreSQL" is checked, not assumed), plus the
artifacts in the MLflow server's destination folder (uploaded through the server).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.pg import Cluster, missing_reason, postgres_cluster
from tests.servers import BIN, QUIET_ENV, free_port, mlflow_server, prefect_server, running

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RUN_NAME = "pg-pipeline"
PARAMS = {"methods": ["mostpop"], "epochs": 1}
NO_POOL_FIX = "create it: prefect work-pool create pngnn --type process"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


@dataclass
class Stack:
    pg: Cluster
    api: str
    mlflow: str
    root: Path
    env: dict[str, str]
    results: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    deployments_before_pool: list = field(default_factory=list)
    git_before: str = ""

    def cli(self, args: list[str], cwd: Path = ROOT, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, env={**self.env, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def post(self, path: str, body: dict | None = None) -> list | dict:
        resp = httpx.post(f"{self.api}{path}", json=body or {}, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def mlflow_api(self, method: str, path: str, **kwargs) -> dict:
        resp = httpx.request(method, f"{self.mlflow}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def flow_run(self) -> dict:
        (run,) = self.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": [RUN_NAME]}}})
        return run

    def kill_unfinished_run(self) -> None:
        """A run still going when the test ends (a failed watch) would outlive the worker: the
        process worker starts each flow run in a session of its own, whose pid the server records."""
        for run in self.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": [RUN_NAME]}}}):
            pid = (run.get("infrastructure_pid") or "").rpartition(":")[2]
            if run["state"]["type"] not in FINAL_STATES and pid.isdigit():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGKILL)


def workpool(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.workpool", *args]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, data_dir) -> Iterator[Stack]:
    reason = missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # .ci/run installs PostgreSQL: CI must never pass by skipping
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("pgstack")
    git_before = git_status()
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_cluster(("prefect", "mlflow")))
        # Both servers create their schemas on first start (migrations): slower than on sqlite.
        api = stack.enter_context(prefect_server(root / "prefect", pg.url("prefect", "postgresql+asyncpg"),
                                                 timeout=300))
        mlflow_url = stack.enter_context(mlflow_server(root / "mlflow", pg.url("mlflow"), timeout=300))
        env = {k: v for k, v in os.environ.items() if k != "PNGNN_CODE_DIR"}
        env.update({**QUIET_ENV, "PREFECT_API_URL": api, "PREFECT_HOME": str(root / "client"),
                    "PREFECT_LOCAL_STORAGE_PATH": str(root / "prefect-results"), "PNGNN_DATA_DIR": str(data_dir),
                    "PNGNN_DB": str(root / "data" / "pngnn.duckdb"), "PNGNN_PROFILES_DIR": str(root / "profiles"),
                    "MLFLOW_TRACKING_URI": mlflow_url})
        s = Stack(pg, api, mlflow_url, root, env, git_before=git_before)
        s.results["check-no-pool"] = s.cli(workpool("check"))
        s.results["deploy-no-pool"] = s.cli(workpool("deploy"))
        s.deployments_before_pool = list(s.post("/deployments/filter"))
        s.results["create-pool"] = s.cli([str(BIN / "prefect"), "work-pool", "create", "pngnn", "--type", "process"])
        s.results["check"] = s.cli(workpool("check"))
        # the deployer's own PNGNN_CODE_DIR must not be baked into the pull step
        s.results["deploy"] = s.cli(workpool("deploy"), PNGNN_CODE_DIR="/nowhere/deployer-checkout")
        elsewhere = root / "worker-cwd"
        elsewhere.mkdir()
        port = free_port()
        worker_env = {**env, "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1", "PREFECT_WORKER_WEBSERVER_PORT": str(port)}
        stack.enter_context(running(workpool("worker", "--with-healthcheck"), f"http://127.0.0.1:{port}/health",
                                    worker_env, root / "worker.log", timeout=180, cwd=elsewhere))
        stack.callback(s.kill_unfinished_run)  # runs first at teardown, while the server still answers
        args = [a for k, v in PARAMS.items() for a in ("-p", f"{k}={json.dumps(v)}")]
        s.results["run"] = s.cli([str(BIN / "prefect"), "deployment", "run", "pipeline/quick", *args,
                                  "--flow-run-name", RUN_NAME, "--watch", "--watch-interval", "2",
                                  "--watch-timeout", "480"], timeout=540)
        yield s


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_missing_pool_is_one_line_naming_the_fix_before_anything_is_deployed(stack):
    for key in ("check-no-pool", "deploy-no-pool"):
        proc = stack.results[key]
        err = proc.stderr.strip()
        assert proc.returncode == 1 and len(err.splitlines()) == 1, err
        assert err == f"error: work pool 'pngnn' does not exist on PREFECT_API_URL={stack.api}; {NO_POOL_FIX}"
    assert stack.deployments_before_pool == []


def test_the_four_deployments_are_on_the_pool_with_the_pull_step_left_to_the_worker(stack):
    assert_ok(stack.results["create-pool"])
    assert_ok(stack.results["check"])
    assert stack.results["check"].stdout.startswith(f"work pool 'pngnn' (process) on {stack.api}")
    assert_ok(stack.results["deploy"])
    deployments = {d["name"]: d for d in stack.post("/deployments/filter")}
    assert set(deployments) == {"quick", "table1", "weighted-ease", "weekly"}
    for d in deployments.values():
        assert d["work_pool_name"] == "pngnn"
        assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory":
                                    {"directory": "{{ $PNGNN_CODE_DIR }}"}}]
    (weekly,) = deployments["weekly"]["schedules"]
    assert (weekly["schedule"]["cron"], weekly["schedule"]["timezone"], weekly["active"]) == ("0 3 * * 1", "UTC", True)
    assert deployments["quick"]["parameters"] == {"profile": "quick", "llm": {"users": 20}}


def test_the_run_goes_through_the_pool_and_the_worker_and_completes(stack):
    assert_ok(stack.results["run"])
    run = stack.flow_run()
    assert run["state"]["type"] == "COMPLETED"
    assert run["work_pool_name"] == "pngnn"
    assert run["parameters"]["methods"] == ["mostpop"] and run["parameters"]["profile"] == "quick"
    tasks = {t["name"]: t["state"]["type"] for t in stack.post("/task_runs/filter",
                                                              {"flow_runs": {"id": {"any_": [run["id"]]}}})}
    assert tasks.get("train-mostpop-ml-100k-seed1") == "COMPLETED", tasks
    log = (stack.root / "worker.log").read_text()
    assert "Deployment step 'set_working_directory' completed successfully" in log


def test_the_prefect_server_keeps_the_run_in_postgresql(stack):
    run = stack.flow_run()
    rows = stack.pg.sql("prefect", f"SELECT id, state_type FROM flow_run WHERE name = '{RUN_NAME}'")
    assert rows == [(run["id"], "COMPLETED")]
    assert stack.pg.sql("prefect", "SELECT count(*) FROM deployment") == [("4",)]


def test_the_runs_land_in_the_mlflow_server_on_postgresql_with_proxied_artifacts(stack):
    flow_run_id = stack.flow_run()["id"]
    exp = stack.mlflow_api("GET", "experiments/get-by-name", params={"experiment_name": "pngnn-ml-100k"})
    exp_id = exp["experiment"]["experiment_id"]
    runs = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": f"tags.prefect_flow_run_id = '{flow_run_id}'"})["runs"]
    by_kind = {("parent" if {"key": "kind", "value": "parent"} in r["data"]["tags"] else "child"): r for r in runs}
    assert len(runs) == 2 and set(by_kind) == {"parent", "child"}, runs
    child = by_kind["child"]
    tags = {t["key"]: t["value"] for t in child["data"]["tags"]}
    assert tags["method"] == "mostpop" and tags["mlflow.parentRunId"] == by_kind["parent"]["info"]["run_id"]
    metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
    assert 0 < metrics["recall_at_20"] <= 1
    # the database holds them (not a file store beside the server)
    run_ids = {r["info"]["run_id"] for r in runs}
    rows = stack.pg.sql("mlflow", "SELECT run_uuid, status FROM runs")
    assert {(rid, "FINISHED") for rid in run_ids} <= set(rows)
    # artifacts went through the server (mlflow-artifacts:) into its destination folder
    assert child["info"]["artifact_uri"].startswith("mlflow-artifacts:")
    stored = stack.root / "mlflow" / "artifacts" / exp_id / child["info"]["run_id"] / "artifacts"
    assert json.loads((stored / "metrics.json").read_text())["recall@20"] == pytest.approx(metrics["recall_at_20"])


def test_the_checkout_is_left_as_it_was(stack):
    assert git_status() == stack.git_before
