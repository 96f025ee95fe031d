"""Report task: the results table (CSV, Markdown) and bar chart, logged to the parent MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from prefect import task

from pngnn.report import write_report
from pngnn.settings import Settings


@task(name="report", task_run_name="report-{dataset}-table")
def report_task(dataset: str, runs: dict[str, list[dict[str, float]]], parent_run_id: str,
                out_dir: str | None = None) -> str:
    """Write table.csv, table.md and the P@K/R@K bar chart; log them to ``parent_run_id``; return the Markdown."""
    mlflow.set_tracking_uri(Settings.from_env().mlflow_uri)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(out_dir) if out_dir else Path(tmp)
        paths = write_report(runs, target, f"{dataset}: {', '.join(runs)} over splits",
                             paper=dataset == "ml-1m")
        for kind, folder in (("csv", "report"), ("markdown", "report"), ("chart", "plots")):
            mlflow.MlflowClient().log_artifact(parent_run_id, str(paths[kind]), folder)
        markdown = paths["markdown"].read_text()
    print(markdown)
    return markdown
