"""The end-to-end pipeline, ``pngnn run``: ingest -> split -> [pretrain -> augment -> merge when a
method needs LLM edges] -> train -> evaluate -> report, a parent MLflow run (tables and charts) with
a child run per method and split; the loop is the experiment flow's (``flows.common.grid_flow_body``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import grid_flow_body
from pngnn.core.constants import DEFAULT_METHODS
from pngnn.core.settings import LLMSettings
from tasks.report import report_task
from tasks.runners import SettingsTaskRunner


@flow(name="pipeline", log_prints=True, task_runner=SettingsTaskRunner())
def pipeline(profile: str = "quick", dataset: str | None = None, seeds: list[int] | None = None,
             methods: list[str] | None = None, epochs: int | None = None, llm: LLMSettings | None = None,
             tuned: dict[str, str] | None = None) -> dict[str, Any]:
    """Train and evaluate ``methods`` on each split seed of a profile; returns metrics per method.

    ``llm``: which OpenAI-compatible server and model augment the graph, and how many users
    (default: the embedded SmolLM2 server, started and stopped by the augment step).
    ``tuned``: method -> tuned profile name (default: a saved ``<method>-<dataset>`` profile).
    """
    out = grid_flow_body("pipeline", profile, dataset, seeds, methods or list(DEFAULT_METHODS), epochs, llm, tuned)
    report_task(out["dataset"], out["runs"], out["parent_run_id"])  # the tables and charts on the parent run
    return {k: out[k] for k in ("parent_run_id", "dataset", "summary", "table")}


if __name__ == "__main__":
    print(pipeline()["summary"])
