"""Report task: the results table (CSV, Markdown) and charts, logged to the parent MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
from prefect import task

from pngnn.app.parent_records import log_report
from pngnn.core.settings import Settings


@task(name="report", task_run_name="report-{dataset}-table")
def report_task(dataset: str, runs: dict[str, list[dict[str, float]]], parent_run_id: str,
                out_dir: str | None = None) -> str:
    """Write table.csv, table.md and the charts (``log_report``); log them to ``parent_run_id``;
    return the Markdown (the flow run's own table artifact already shows it)."""
    mlflow.set_tracking_uri(Settings.from_env().mlflow_uri)
    return log_report(dataset, runs, parent_run_id, Path(out_dir) if out_dir else None)
