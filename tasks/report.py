"""Report task: the results table (CSV, Markdown) and bar chart, logged to the parent MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
from prefect import task

from pngnn.parent_records import log_report
from pngnn.settings import Settings


@task(name="report", task_run_name="report-{dataset}-table")
def report_task(dataset: str, runs: dict[str, list[dict[str, float]]], parent_run_id: str,
                out_dir: str | None = None) -> str:
    """Write table.csv, table.md and the P@K/R@K bar chart; log them to ``parent_run_id``; return the Markdown."""
    mlflow.set_tracking_uri(Settings.from_env().mlflow_uri)
    markdown = log_report(dataset, runs, parent_run_id, Path(out_dir) if out_dir else None)
    print(markdown)
    return markdown
