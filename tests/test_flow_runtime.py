"""No traps inside a flow (issue 15 item 5): the training task pins torch's threads, each epoch
is one line in the run's Prefect logs, and the worker's terminal gets no progress bars.

The flow runs as the worker runs one: in its own process, against a real ``prefect server``,
tracking into a real MLflow store; its logs are read back through Prefect's REST API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pngnn.core.settings import Settings, available_cores
from pngnn.data.split import create_split
from pngnn.data.store import Store
from tests.servers import QUIET_ENV, prefect_server

ROOT = Path(__file__).resolve().parents[1]

# An unpinned process (torch's default: a thread per core; 3 here whatever the machine) runs a
# flow with one training task; PNGNN_TORCH_THREADS=1 must hold inside the task.
FLOW = """
import json
import torch
from prefect import flow
from prefect.runtime import flow_run
from tasks.model import train_evaluate_task

torch.set_num_threads(3)

@flow(name="runtime-probe")
def probe() -> dict:
    out = train_evaluate_task("ml-100k", 2, "lightgcn", {"epochs": 2, "eval_every": 1, "batch_size": 4096,
                              "n_neg": 2, "l2": 1e-3}, "custom", register=True)
    return {"run_id": out["run_id"], "flow_run_id": str(flow_run.id)}

out = probe()
print("RESULT", json.dumps({**out, "threads_after": torch.get_num_threads()}))
"""


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, ml100k_db, data_dir) -> dict:
    root = tmp_path_factory.mktemp("flow-runtime")
    db = root / "pngnn.duckdb"
    shutil.copyfile(ml100k_db, db)
    with Store(db) as store:
        create_split(store, "ml-100k", 2, 0.2, 0.1)  # a validation part: an epoch line shows its metric
    with prefect_server(root / "prefect") as api:
        env = {**os.environ, **QUIET_ENV, "PREFECT_API_URL": api, "PREFECT_HOME": str(root / "prefect"),
               "PNGNN_DATA_DIR": str(data_dir), "PNGNN_DB": str(db), "PNGNN_TORCH_THREADS": "1",
               "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "PYTHONPATH": str(ROOT)}
        for unset in ("OMP_NUM_THREADS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PREFECT_LOGGING_EXTRA_LOGGERS"):
            env.pop(unset, None)  # what the task itself must set up, not the test
        proc = subprocess.run([sys.executable, "-c", FLOW], env=env, cwd=root, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.split("RESULT", 1)[1])
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [result["flow_run_id"]]}}},
                          timeout=30).json()
        task_runs = httpx.post(f"{api}/task_runs/filter", json={}, timeout=30).json()
    return {"proc": proc, "result": result, "logs": logs, "task_runs": {t["id"]: t["name"] for t in task_runs},
            "tracking_uri": env["MLFLOW_TRACKING_URI"]}


@pytest.mark.slow
def test_the_training_task_pins_torch_threads(flow_run):
    import mlflow

    run = mlflow.MlflowClient(flow_run["tracking_uri"]).get_run(flow_run["result"]["run_id"])
    assert run.data.tags["torch_threads"] == "1"  # what torch computed with inside the task
    assert flow_run["result"]["threads_after"] == 1  # 3 before the flow


@pytest.mark.slow
def test_each_epoch_is_one_line_in_the_task_runs_prefect_logs(flow_run):
    epochs = [log for log in flow_run["logs"] if log["name"] == "pngnn.training.train"]
    # each line names its model: a flow that trains several at once says which line is which
    assert [re.match(r"lightgcn ml-100k seed 2: epoch (\d)/2 loss \d+\.\d{5} \d+\.\ds valid recall@20 0\.\d{4}$",
                     e["message"]).group(1) for e in epochs] == ["1", "2"], [e["message"] for e in epochs]
    assert {flow_run["task_runs"][e["task_run_id"]] for e in epochs} == {"train-lightgcn-ml-100k-seed2"}


@pytest.mark.slow
def test_no_progress_bars_in_the_flow_runs_output(flow_run):
    """Neither tqdm's epoch bar nor MLflow's artifact bars (the model is logged, registered and
    loaded back for its input example): the worker's terminal holds log lines only."""
    err = flow_run["proc"].stderr
    # the same lines on the console, through Prefect's handler
    assert "pngnn.training.train - lightgcn ml-100k seed 2: epoch 1/2" in err
    assert "Downloading artifacts" not in err and "Uploading artifacts" not in err
    assert not re.search(r"\d+%\|", err), err[-2000:]  # no tqdm bar of any kind


def test_the_default_shares_the_cores_among_the_flow_runs_a_worker_runs_at_once():
    cores = available_cores()
    assert Settings(serve_limit=1).torch_thread_count() == cores
    assert Settings(serve_limit=2).torch_thread_count() == max(1, cores // 2)
    assert Settings(serve_limit=cores + 1).torch_thread_count() == 1  # never 0
    assert Settings(torch_threads=3, serve_limit=2).torch_thread_count() == 3


def test_the_served_worker_pins_and_exports_its_threads_before_it_serves(monkeypatch):
    """``python -m flows.serve`` pins its own torch threads and hands the count (and no MLflow
    bars) to the flow-run processes it starts, before it serves anything."""
    import torch

    import flows.serve

    seen: dict[str, object] = {}

    def serve(*deployments, **kwargs):  # stands in for Prefect's serve loop, which never returns
        seen.update(threads=torch.get_num_threads(), env=dict(os.environ), deployments=len(deployments))

    monkeypatch.setattr(flows.serve, "serve", serve)
    monkeypatch.setenv("PNGNN_SERVE_LIMIT", "2")
    for name in ("PNGNN_TORCH_THREADS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.setenv(name, "set")  # recorded, so what main() exports is undone after the test
        monkeypatch.delenv(name)
    flows.serve.main()
    expected = max(1, available_cores() // 2)
    assert seen["threads"] == expected and seen["deployments"] == 4
    env = seen["env"]
    assert isinstance(env, dict)
    assert env["PNGNN_TORCH_THREADS"] == str(expected) and env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    child = subprocess.run([sys.executable, "-c", "from pngnn.core.settings import Settings; "
                            "print(Settings().torch_thread_count())"], env={**env, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=120, check=True)
    assert child.stdout.strip() == str(expected)  # a flow run started by the worker pins the same
