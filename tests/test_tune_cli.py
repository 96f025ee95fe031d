"""`pngnn tune` as a user runs it, against a real MLflow server: nested trial runs, plots, a saved
profile that `pngnn train --profile` reproduces, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.servers import BIN, QUIET_ENV, mlflow_server

pytestmark = pytest.mark.slow


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pngnn"), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("tune-cli")
    with mlflow_server(root / "mlflow") as url:
        env = {**os.environ, **QUIET_ENV, "PNGNN_DATA_DIR": str(data_dir), "PNGNN_DB": str(root / "db.duckdb"),
               "MLFLOW_TRACKING_URI": url, "PNGNN_PROFILES_DIR": str(root / "profiles")}
        env.pop("PREFECT_API_URL", None)
        proc = cli(["tune", "--method", "pn-ease", "--profile", "quick", "--trials", "2", "--save-as", "pn-100k",
                    "--results-dir", str(root / "results")], env)
        again = cli(["tune", "--method", "pn-ease", "--profile", "quick", "--trials", "2", "--save-as", "pn-100k"], env)
        train = cli(["train", "--profile", "pn-100k", "--results-dir", str(root / "retrain")], env)
        import mlflow

        mlflow.set_tracking_uri(url)
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name("pngnn-ml-100k")
        all_runs = client.search_runs([exp.experiment_id])
        parent = next(r for r in all_runs if r.data.tags.get("flow") == "tune")
        artifacts = [a.path for d in ("plots", "tuning", "profile")
                     for a in client.list_artifacts(parent.info.run_id, d)]
        production = client.get_model_version_by_alias("pngnn-ml-100k-pn-ease", "production")
        yield {"root": root, "proc": proc, "again": again, "train": train, "runs": all_runs, "parent": parent,
               "artifacts": artifacts, "production": production}


def test_tune_completes_and_saves_the_profile(tuned):
    proc = tuned["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "saved profile 'pn-100k'" in proc.stdout and "seed 1 test: P@5" in proc.stdout
    assert (tuned["root"] / "profiles" / "pn-100k.json").is_file()
    assert not (tuned["root"] / "studies" / "pn-100k.log").exists()  # the finished study's journal is gone


def test_trials_are_nested_runs_of_one_parent_with_the_study_plots(tuned):
    parent_id = tuned["parent"].info.run_id
    children = [r for r in tuned["runs"] if r.data.tags.get("mlflow.parentRunId") == parent_id]
    trials = [r for r in children if r.data.tags.get("kind") == "trial"]
    tests = [r for r in children if r.data.tags.get("kind") == "test"]
    assert len(trials) == 2 and len(tests) == 1
    assert all(t.data.tags["optuna_state"] == "COMPLETE" and "valid_ndcg_at_20" in t.data.metrics for t in trials)
    assert all(set(t.data.params) == {"ease_lambda", "disliked_input", "disliked_score", "pn_dropout"}
               for t in trials)
    assert "precision_at_05" in tests[0].data.metrics and "valid_ndcg_at_20" not in tests[0].data.metrics
    assert {"plots/seed1_history.png", "plots/seed1_parallel_coordinate.png", "tuning/seed1_study.json",
            "profile/pn-100k.json"} <= set(tuned["artifacts"])
    best = max(t.data.metrics["valid_ndcg_at_20"] for t in trials)
    assert tuned["parent"].data.metrics["seed1_best_valid_ndcg_at_20"] == pytest.approx(best)
    assert tuned["production"].run_id == tests[0].info.run_id


def test_the_saved_profile_reproduces_the_test_run(tuned):
    doc = json.loads((tuned["root"] / "profiles" / "pn-100k.json").read_text())
    parent = tuned["parent"].data.params
    assert doc["method"] == "pn-ease" and doc["valid_fraction"] == 0.0
    assert doc["per_seed"]["1"]["ease_lambda"] == pytest.approx(float(parent["seed1_best_ease_lambda"]))
    assert doc["tuning"]["mlflow_parent_run_id"] == tuned["parent"].info.run_id
    train = tuned["train"]
    assert train.returncode == 0, train.stderr[-3000:]
    # not the canonical name pn-ease-ml-100k: its own folder, never another study's
    tuned_json = json.loads((tuned["root"] / "results" / "ml-100k" / "pn-ease-tuned-pn-100k" / "seed1.json")
                            .read_text())
    retrained = json.loads((tuned["root"] / "retrain" / "ml-100k" / "pn-ease" / "seed1.json").read_text())
    assert retrained["metrics"] == pytest.approx(tuned_json["metrics"], abs=1e-6)


def test_a_taken_profile_name_is_a_one_line_error_before_any_work(tuned):
    again = tuned["again"]
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1
    assert "profile 'pn-100k' exists already" in again.stderr
    parents = [r for r in tuned["runs"] if r.data.tags.get("flow") == "tune"]
    assert len(parents) == 1  # the refused run started nothing
