"""The Prefect pipeline end to end against a real local Prefect server and MLflow store.

The flow runs as a user runs it (``pngnn run`` in a subprocess) with PREFECT_API_URL
pointing at a real ``prefect server`` started here; then the server's REST API must
report a completed flow run with its task runs, and the MLflow store must hold the
parent and child runs with params, per-epoch loss, final metrics and a loadable model.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import BIN, QUIET_ENV, prefect_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("pipeline")
    with prefect_server(root / "prefect") as api:
        env = {
            **os.environ,
            **QUIET_ENV,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "prefect"),
            "PNGNN_DATA_DIR": str(data_dir),
            "PNGNN_DB": str(root / "pngnn.duckdb"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        }
        cmd = [str(BIN / "pngnn"), "run", "--epochs", "4", "--method", "mostpop", "--method", "lightgcn",
               "--method", "llm-pngnn", "--llm-users", "3"]
        proc = subprocess.run(cmd, env=env, cwd=root,
                              capture_output=True, text=True, timeout=900)
        flow_runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
        task_runs = httpx.post(f"{api}/task_runs/filter", json={}, timeout=30).json()
        # The same flow again: ingest, split and pretrain come from the task cache, the LLM
        # answers from the DuckDB cache (no request is sent twice).
        rerun = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)
        all_runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
        second = next(r for r in all_runs if r["id"] not in {f["id"] for f in flow_runs})
        rerun_tasks = httpx.post(f"{api}/task_runs/filter", json={
            "flow_runs": {"id": {"any_": [second["id"]]}}}, timeout=30).json()
    return {"root": root, "proc": proc, "flow_runs": flow_runs, "task_runs": task_runs,
            "tracking_uri": env["MLFLOW_TRACKING_URI"], "rerun": rerun, "rerun_tasks": rerun_tasks}


def test_cli_run_succeeds_and_prints_table(pipeline_run):
    proc = pipeline_run["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| lightgcn |" in proc.stdout and "| mostpop |" in proc.stdout and "| llm-pngnn |" in proc.stdout


def test_prefect_server_recorded_completed_flow_and_tasks(pipeline_run):
    runs = pipeline_run["flow_runs"]
    assert len(runs) == 1  # read before the rerun
    assert runs[0]["state"]["type"] == "COMPLETED"
    names = sorted(t["name"] for t in pipeline_run["task_runs"])
    for expected in ("ingest-ml-100k", "split-ml-100k-seed1", "train-lightgcn-ml-100k-seed1",
                     "train-mostpop-ml-100k-seed1",
                     "pretrain-lightgcn-ml-100k-seed1", "augment-ml-100k-seed1", "merge-ml-100k-seed1",
                     "train-llm-pngnn-ml-100k-seed1", "report-ml-100k-table"):
        assert expected in names, names
    assert all(t["state"]["type"] == "COMPLETED" for t in pipeline_run["task_runs"])


def test_rerun_hits_task_cache_and_llm_cache(pipeline_run):
    assert pipeline_run["rerun"].returncode == 0, pipeline_run["rerun"].stderr[-3000:]
    states = {t["name"]: t["state"]["name"] for t in pipeline_run["rerun_tasks"]}
    for name in ("ingest-ml-100k", "split-ml-100k-seed1", "pretrain-lightgcn-ml-100k-seed1"):
        assert states[name] == "Cached", states
    assert states["train-lightgcn-ml-100k-seed1"] == "Completed"  # training is never cached
    assert "'sent': 0" in pipeline_run["rerun"].stderr + pipeline_run["rerun"].stdout


def test_mlflow_has_parent_and_child_runs_with_params_metrics_model(pipeline_run):
    import mlflow

    mlflow.set_tracking_uri(pipeline_run["tracking_uri"])
    exp = mlflow.get_experiment_by_name("pngnn-ml-100k")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parents = [r for r in runs if r.data.tags.get("kind") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    parents = [r for r in parents if r.info.start_time == min(p.info.start_time for p in parents)]
    children = [r for r in children if r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    lgcn = next(r for r in children if r.data.tags["method"] == "lightgcn")
    assert lgcn.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert lgcn.data.params["dim"] == "64" and lgcn.data.params["split_seed"] == "1"
    assert "dataset_checksum" in parents[0].data.params
    client = mlflow.MlflowClient()
    losses = client.get_metric_history(lgcn.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]
    assert losses[-1].value < losses[0].value
    assert 0 < lgcn.data.metrics["precision_at_10"] <= 1
    assert "lightgcn_precision_at_05_mean" in parents[0].data.metrics
    # a run page that opens on the answer (issue 33): at most 25 metrics a child run and 5 a method
    # on the parent; the unweighted L2 penalty is l2_norm, never a loss term; the training seed is
    # train_seed; no validation settings where there is no validation part
    for child in children:
        assert len(child.data.metrics) <= 25, sorted(child.data.metrics)
        assert "loss_l2" not in child.data.metrics and "seed" not in child.data.params
        if child.data.tags["method"] != "mostpop":  # the graph models: a loss per epoch, a seed
            assert "l2_norm" in child.data.metrics and "train_seed" in child.data.params
        assert not {"valid_metric", "patience", "eval_every"} & set(child.data.params)
        assert not any("/" in name for name in child.data.metrics)
    methods = {r.data.tags["method"] for r in children}
    assert len(parents[0].data.metrics) <= 5 * len(methods), sorted(parents[0].data.metrics)
    charts = {a.path for a in mlflow.MlflowClient().list_artifacts(parents[0].info.run_id, "plots")}
    assert {"plots/precision_recall_by_method.png", "plots/recall_by_segment.png"} <= charts
    model = mlflow.pyfunc.load_model(f"runs:/{lgcn.info.run_id}/model")
    recs = model.predict(__import__("pandas").DataFrame({"user_id": [1, 2, 3], "k": [5, 5, 5]}))
    assert recs.groupby("user_id").size().to_dict() == {1: 5, 2: 5, 3: 5}
    assert model.metadata.metadata["n_items"] == int(lgcn.data.params["n_items"])
    artifacts = {a.path for a in client.list_artifacts(lgcn.info.run_id, "plots")}
    assert {"plots/training_curve.png", "plots/metrics_at_k.png", "plots/metrics_by_segment.png"} <= artifacts
    # the segment table as an MLflow table, two headlines as metrics; the quartiles hold every evaluated user
    table = client.download_artifacts(lgcn.info.run_id, "segments.json", str(pipeline_run["root"]))
    segments = __import__("pandas").read_json(table, orient="split").set_index("segment")
    assert segments.loc[[f"users_q{q}" for q in range(1, 5)], "n_users"].sum() == lgcn.data.metrics["n_eval_users"]
    assert lgcn.data.metrics["segment_long_tail_recall_at_20"] == pytest.approx(segments.loc["long_tail", "recall@20"])
    assert 0 <= lgcn.data.metrics["segment_users_sparsest10_recall_at_20"] < 1


def test_llm_augmentation_is_tracked(pipeline_run):
    """The LLM steps ran for real (embedded SmolLM2): counts, prompt and edges on the parent run."""
    import mlflow
    import polars as pl

    mlflow.set_tracking_uri(pipeline_run["tracking_uri"])
    exp = mlflow.get_experiment_by_name("pngnn-ml-100k")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parent = [r for r in runs if r.data.tags.get("kind") == "parent"][-1]  # the first flow run
    llm_run = next(r for r in runs if r.data.tags.get("method") == "llm-pngnn"
                   and r.data.tags["mlflow.parentRunId"] == parent.info.run_id)
    assert llm_run.data.tags["llm_model"] == parent.data.params["llm_model"]
    assert llm_run.data.tags["prompt_version"] == parent.data.params["prompt_version"]
    client = mlflow.MlflowClient()
    metrics = json.loads(Path(client.download_artifacts(parent.info.run_id, "augmentation/seed1_counts.json",
                                                        str(pipeline_run["root"]))).read_text())
    assert metrics["positive_edges"] + metrics["negative_edges"] >= 1
    paths = {a.path for a in client.list_artifacts(parent.info.run_id, "augmentation")}
    assert "augmentation/augmented_edges_seed1.parquet" in paths
    assert "augmentation/prompt_template.txt" in paths
    local = client.download_artifacts(parent.info.run_id, "augmentation/augmented_edges_seed1.parquet",
                                      str(pipeline_run["root"]))
    edges = pl.read_parquet(local)
    assert set(edges["kind"].unique()) <= {"positive", "negative"}
    assert edges.height == metrics["positive_edges"] + metrics["negative_edges"]


def test_lightgcn_beats_most_popular_in_pipeline(pipeline_run):
    import mlflow

    mlflow.set_tracking_uri(pipeline_run["tracking_uri"])
    exp = mlflow.get_experiment_by_name("pngnn-ml-100k")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")  # newest first
    by_method = {r.data.tags.get("method"): r for r in reversed(runs) if r.data.tags.get("method")}
    assert by_method["lightgcn"].data.metrics["precision_at_10"] > by_method["mostpop"].data.metrics["precision_at_10"]


def test_duckdb_file_holds_the_split(pipeline_run):
    from pngnn.data.store import Store

    with Store(Path(pipeline_run["root"]) / "pngnn.duckdb", read_only=True) as store:
        parts = store.query_sql("SELECT part, count(*) AS n FROM splits GROUP BY part ORDER BY part")
    assert dict(parts.iter_rows()) == {"test": 20000, "train": 80000}


def test_first_run_makes_each_registered_model_production(pipeline_run):
    """After the first `pngnn run`, models:/<name>@production names the first run's version of every
    method (the rerun's versions are not better by decree: they stay candidates)."""
    import mlflow

    mlflow.set_tracking_uri(pipeline_run["tracking_uri"])
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name("pngnn-ml-100k")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    first_parent = min((r for r in runs if r.data.tags.get("kind") == "parent"), key=lambda r: r.info.start_time)
    first = {r.data.tags["method"]: r.info.run_id for r in runs
             if r.data.tags.get("mlflow.parentRunId") == first_parent.info.run_id}
    assert set(first) == {"mostpop", "lightgcn", "llm-pngnn"}
    for method, run_id in first.items():
        assert client.get_model_version_by_alias(f"pngnn-ml-100k-{method}", "production").run_id == run_id
    served = mlflow.pyfunc.load_model("models:/pngnn-ml-100k-lightgcn@production")
    assert len(served.predict(__import__("pandas").DataFrame({"user_id": [1]}))) == 10
