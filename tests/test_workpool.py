"""prefect.yaml (the work-pool deployments) against flows/serve.py (the embedded default), and
``python -m flows.workpool``'s one-line errors when there is no server to hold a pool.

The two files declare the same four deployments; nothing keeps them in step but this test.
The runs through a real pool and worker, on PostgreSQL, are in tests/test_postgres_stack.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.workpool import CODE_DIR_VAR, PREFECT_YAML, pool_name
from pngnn.core.errors import PngnnError
from tests.servers import QUIET_ENV, free_port

ROOT = Path(__file__).resolve().parent.parent


def yaml_deployments() -> dict[str, dict]:
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_prefect_yaml_declares_the_served_deployments_as_they_are(monkeypatch):
    """Same names, flows, parameters, tags, descriptions and (with the default settings) cron as
    flows/serve.py; a change to one file and not the other fails here."""
    from flows.serve import deployments
    from pngnn.core.settings import Settings

    for var in ("PNGNN_REAUGMENT_CRON", "PNGNN_TIMEZONE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(ROOT)  # serve's entrypoints are relative to the working directory
    served = {d.name: d for d in deployments(Settings())}
    declared = yaml_deployments()
    assert set(declared) == set(served) == {"quick", "table1", "weighted-ease", "weekly"}
    for name, dep in served.items():
        mine = declared[name]
        assert mine["entrypoint"] == dep.entrypoint, name
        assert mine["parameters"] == dep.parameters, name
        assert mine["tags"] == dep.tags, name
        assert mine["description"] == dep.description, name
        assert [(s["cron"], s["timezone"], s.get("active", True)) for s in mine.get("schedules") or []] == [
            (s.schedule.cron, s.schedule.timezone, s.active) for s in dep.schedules], name
    assert declared["weekly"]["schedules"][0]["cron"] == Settings.model_fields["reaugment_cron"].default


def test_every_deployment_is_on_the_pngnn_pool_and_runs_the_workers_own_checkout():
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    assert pool_name() == "pngnn"
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"pngnn"}
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory":
                             {"directory": "{{ $" + CODE_DIR_VAR + " }}"}}]
    assert all("pull" not in d for d in spec["deployments"])  # one pull step for all of them


def test_a_prefect_yaml_with_two_pools_is_refused(tmp_path):
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    spec["deployments"][1]["work_pool"] = {"name": "other"}
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(PngnnError, match=r"one work pool \(found \['other', 'pngnn'\]\)"):
        pool_name(path)


def workpool(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in {**os.environ, **QUIET_ENV}.items() if k != "PREFECT_API_URL"}
    return subprocess.run([sys.executable, "-m", "flows.workpool", *args], env={**full, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["check", "deploy", "worker"])
def test_no_prefect_server_configured_is_one_line_naming_the_setting(command):
    proc = workpool([command])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert "PREFECT_API_URL is not set" in proc.stderr and "set PREFECT_API_URL=http://HOST:4200/api" in proc.stderr


def test_a_dead_prefect_server_is_one_line_before_anything_is_deployed():
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = workpool(["deploy"], PREFECT_API_URL=url)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and url in err and "prefect server start" in err, err
    assert "Deploying" not in proc.stdout


def test_an_unknown_command_prints_the_usage():
    proc = workpool(["start"])
    assert proc.returncode == 1 and proc.stderr.startswith("usage: python -m flows.workpool")


@pytest.mark.slow
def test_the_documented_order_serve_then_pool_completes_a_run(tmp_path):
    """docs/orchestration.md's order as a user follows it (issue 33 item 3): `python -m flows.serve`
    first (it registers the four deployments, then stops), then the pool: `prefect work-pool create`,
    `python -m flows.workpool deploy` over the served deployments of the same names, a worker,
    `prefect deployment run 'pipeline/quick'`: the run is pulled by the pool's worker, its pull
    step changes into the checkout, and it completes."""
    import signal
    import time

    from tests.servers import BIN, prefect_server

    home = tmp_path / "prefect-home"
    with prefect_server(home) as api:
        env = {k: v for k, v in {**os.environ, **QUIET_ENV}.items() if k != CODE_DIR_VAR}
        env.update(PREFECT_API_URL=api, PREFECT_HOME=str(home), PNGNN_DB=str(tmp_path / "pngnn.duckdb"),
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

        def prefect(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
            return subprocess.run([str(BIN / "prefect"), *args], env=env, capture_output=True, text=True,
                                  timeout=timeout)

        with (tmp_path / "serve.log").open("w") as log:
            serve = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while "pipeline/quick" not in prefect("deployment", "ls").stdout:
                assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(2)
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=60)
        assert prefect("work-pool", "create", "pngnn", "--type", "process").returncode == 0
        deployed = subprocess.run([sys.executable, "-m", "flows.workpool", "deploy"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        inspected = prefect("deployment", "inspect", "pipeline/quick").stdout
        assert "'work_pool_name': 'pngnn'" in inspected and "set_working_directory" in inspected, inspected[:3000]
        with (tmp_path / "worker.log").open("w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "flows.workpool", "worker"], cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            run = prefect("deployment", "run", "pipeline/quick", "--param", 'methods=["mostpop"]', "--watch",
                          "--watch-timeout", "900", timeout=960)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        worker_log = (tmp_path / "worker.log").read_text()
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-3000:] + worker_log[-3000:]
        assert "Deployment step 'set_working_directory' completed successfully" in worker_log, worker_log[-3000:]
