"""The MLflow UI addresses the project prints and documents, each opening the runs view.

MLflow 3 opens an experiment on its GenAI overview (traces, sessions, judges) whatever the
experiment's kind tag says; the same pages in the model-training view show the runs table and
the run's metrics. ``workflowType=machine_learning`` in the address picks that view, so every
address made here carries it. A sqlite store has no server: its addresses are those of
``mlflow ui`` on its default port, printed beside the command that starts it.
"""

from __future__ import annotations

import mlflow

from pngnn.core.settings import Settings

MODEL_TRAINING_VIEW = "workflowType=machine_learning"
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"


def server_base(tracking_uri: str) -> str | None:
    """The UI's base address when the tracking store is a server; None for a file store."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else None


def experiment_url(base: str, experiment_id: str) -> str:
    """An experiment's runs table."""
    return f"{base}/#/experiments/{experiment_id}?{MODEL_TRAINING_VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page: its metrics, parameters, plots and model."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


def mlflow_run_url(settings: Settings, run_id: str) -> str | None:
    """The UI page of a run, when the tracking store is a server."""
    base = server_base(settings.mlflow_uri)
    if base is None:
        return None
    experiment_id = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri).get_run(run_id).info.experiment_id
    return run_url(base, experiment_id, run_id)


def where_to_open(settings: Settings, run_id: str) -> str:
    """One line saying where a run's page is: its address on a server; for a file store, the
    command that starts the UI on it and the address the page will have there."""
    url = mlflow_run_url(settings, run_id)
    if url is not None:
        return url
    experiment_id = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri).get_run(run_id).info.experiment_id
    return (f"run {run_id} in {settings.mlflow_uri}: `mlflow ui --backend-store-uri {settings.mlflow_uri}`, then "
            f"{run_url(MLFLOW_UI_DEFAULT, experiment_id, run_id)}")
