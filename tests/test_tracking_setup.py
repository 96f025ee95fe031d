"""The dataset's MLflow experiment: created once, a model-training experiment, artifacts beside the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pngnn.core.settings import Settings
from pngnn.tracking.runs import experiment_name, setup


def test_a_new_experiment_keeps_its_artifacts_beside_the_data_and_opens_on_runs(tmp_path, monkeypatch):
    import mlflow

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where MLflow would otherwise put ./mlruns
    settings = Settings(db_path=tmp_path / "data" / "pngnn.duckdb", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = setup(settings, "ml-100k")
    assert setup(settings, "ml-100k") == experiment_id  # created once, then found
    experiment = mlflow.MlflowClient().get_experiment(experiment_id)
    assert experiment.name == experiment_name("ml-100k")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "notes/hello.txt")
    stored = list((tmp_path / "data" / "mlartifacts").rglob("hello.txt"))
    assert len(stored) == 1 and run.info.run_id in str(stored[0])
    assert not (elsewhere / "mlruns").exists() and list(elsewhere.iterdir()) == []


def test_an_existing_experiment_is_used_as_it_is(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    made = mlflow.MlflowClient(uri).create_experiment(experiment_name("ml-1m"), artifact_location=str(tmp_path / "own"))
    settings = Settings(db_path=tmp_path / "data" / "pngnn.duckdb", mlflow_uri=uri)
    assert setup(settings, "ml-1m") == made
    assert Path(mlflow.MlflowClient(uri).get_experiment(made).artifact_location) == tmp_path / "own"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "https://mlflow.example.com"])
def test_a_tracking_server_decides_where_artifacts_go(uri):
    from pngnn.tracking.runs import artifact_location

    assert artifact_location(Settings(mlflow_uri=uri)) is None


@pytest.mark.slow
def test_processes_opening_a_fresh_sqlite_store_at_once_all_get_in(tmp_path):
    """Four processes open the same new MLflow sqlite store at once (two `pngnn train --track` started
    together): without the lock, all but one failed inside MLflow's schema migrations."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    probe = ("import sys; from pngnn.core.settings import Settings; from pngnn.tracking.runs import setup; "
             "print(setup(Settings(mlflow_uri=sys.argv[1]), 'ml-100k'))")
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(root), "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", probe, uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-1500:] for _, err in outs]
    assert len({out.strip().splitlines()[-1] for out, _ in outs}) == 1  # one experiment, the same for all
