"""The four deployments (``pipeline/quick``, ``experiment/table1``, ``tune/weighted-ease``,
``reaugment/weekly`` on ``PNGNN_REAUGMENT_CRON``), served by one long-running process:
``python -m flows.serve`` (docs/orchestration.md: what each does, the limits and the health check).
"""

from __future__ import annotations

import sys

from prefect import serve
from prefect.schedules import Cron

from flows.experiment import experiment
from flows.pipeline import pipeline
from flows.reaugment import reaugment
from flows.tune import tune
from pngnn.core.constants import LLM_USERS
from pngnn.core.errors import PngnnError
from pngnn.core.runtime import prepare_worker
from pngnn.core.settings import Settings


def deployments(settings: Settings | None = None) -> list:
    settings = settings or Settings()
    return [
        pipeline.to_deployment(
            name="quick", tags=["pngnn"], parameters={"profile": "quick", "llm": {"users": LLM_USERS}},
            description="ingest -> split -> augment -> merge -> train -> evaluate (quick profile, ML-100K, "
                        f"{LLM_USERS} users asked), tracked in MLflow",
        ),
        experiment.to_deployment(
            name="table1", tags=["pngnn"], parameters={"profile": "paper"},
            description="The paper's Table 1: methods x 3 splits, mean and std, table and chart in MLflow",
        ),
        tune.to_deployment(
            name="weighted-ease", tags=["pngnn"],
            parameters={"method": "weighted-ease", "profile": "paper", "grid": True},
            description="Tune a method on validation only (its grid, or Optuna TPE with grid false; a study per "
                        "split), save it as a new profile, "
                        "train it on train + validation and evaluate it once on test",
        ),
        reaugment.to_deployment(
            name="weekly", tags=["pngnn", "llm"], schedule=Cron(settings.reaugment_cron, timezone=settings.timezone),
            description="Append new data (source), ask the LLM about new and changed users within llm_budget, retrain "
                        "when the inputs changed, promote over production when better on the validation part",
        ),
    ]


def main() -> None:
    try:
        settings = Settings()
    except PngnnError as exc:
        sys.exit(f"error: {exc}")
    prepare_worker(settings)  # torch threads pinned, exported to the flow runs; no MLflow bars
    serve(*deployments(settings), limit=settings.serve_limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
