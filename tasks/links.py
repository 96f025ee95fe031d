"""Prefect and MLflow, linked both ways: MLflow runs made in a flow run carry its id, name and
URL as tags (and name the flow as their source, not Prefect's engine), and the flow run gets
the MLflow parent run's link and metrics table as artifacts."""

from __future__ import annotations

import re

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run

from pngnn.core.settings import Settings
from pngnn.tracking.urls import mlflow_run_url, where_to_open


def prefect_tags() -> dict[str, str]:
    """MLflow tags naming the current flow run; empty outside one."""
    if flow_run.id is None:
        return {}
    tags = {"prefect_flow_run_id": str(flow_run.id), "prefect_flow_run_name": str(flow_run.name),
            "prefect_flow": str(flow_run.flow_name), "mlflow.source.name": f"prefect flow {flow_run.flow_name}",
            "mlflow.source.type": "JOB"}
    if flow_run.ui_url:
        tags["prefect_flow_run_url"] = str(flow_run.ui_url)
    return tags


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from its parts (lowercase letters, digits and dashes, as Prefect
    requires): one key per deployment and dataset, so the Artifacts page keeps their history."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_run_links(settings: Settings, parent_run_id: str, title: str, table_markdown: str,
                      key: str | None = None) -> None:
    """The MLflow parent run (link, id, store) and its table as artifacts of the current flow run,
    and as the flow's last log line: where the metrics are, for whoever watches the run end."""
    url = mlflow_run_url(settings, parent_run_id)
    where = f"[MLflow run {parent_run_id}]({url})" if url else where_to_open(settings, parent_run_id)
    print(f"{title}: metrics in {url or where}\n{table_markdown}")
    create_markdown_artifact(key=key, markdown=f"# {title}\n\n{where}\n\n{table_markdown}\n",
                             description=f"{title}: metrics and the MLflow run")
    if url:
        create_link_artifact(link=url, link_text=f"MLflow run {parent_run_id}", description=title)
