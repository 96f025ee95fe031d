"""Deployments of the four flows, served by one long-running process (the project's worker).

    python -m flows.serve            # registers the deployments, then runs what is scheduled or asked for

registers

* ``pipeline/quick``: the end-to-end pipeline (quick profile, ML-100K);
* ``experiment/table1``: the paper's Table 1 (paper profile, ML-1M, 3 splits);
* ``tune/pn-ease``: validation-only tuning of a method (PN-EASE by default; ``-p method=ease``),
  saved as a new profile and evaluated once on test;
* ``reaugment/weekly``: re-augmentation, retrain and promotion, on a cron schedule
  (``PNGNN_REAUGMENT_CRON``, default Mondays 03:00, timezone ``PNGNN_TIMEZONE``, UTC).

and then polls the Prefect server (``PREFECT_API_URL``) for their runs, executing each in
a subprocess, at most ``PNGNN_SERVE_LIMIT`` (default 1: training uses every core) at a time.
Start a run with ``prefect deployment run 'pipeline/quick'`` (see docs/orchestration.md).
With ``PREFECT_RUNNER_SERVER_ENABLE=true`` the process answers ``GET /health`` on
``PREFECT_RUNNER_SERVER_HOST:PREFECT_RUNNER_SERVER_PORT`` (docker-compose's health check).
The schedule stays active when this process stops: runs that fall due meanwhile start
(late) when it is back.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.schedules import Cron

from flows.experiment import experiment
from flows.pipeline import pipeline
from flows.reaugment import reaugment
from flows.tune import tune

DEFAULT_CRON = "0 3 * * 1"


def deployments() -> list:
    cron = os.environ.get("PNGNN_REAUGMENT_CRON", DEFAULT_CRON)
    tz = os.environ.get("PNGNN_TIMEZONE", "UTC")
    return [
        pipeline.to_deployment(
            name="quick", tags=["pngnn"], parameters={"profile": "quick", "llm": {"users": 20}},
            description="ingest -> split -> augment -> merge -> train -> evaluate (quick profile, ML-100K, "
                        "20 users asked), tracked in MLflow",
        ),
        experiment.to_deployment(
            name="table1", tags=["pngnn"], parameters={"profile": "paper"},
            description="The paper's Table 1: methods x 3 splits, mean and std, table and chart in MLflow",
        ),
        tune.to_deployment(
            name="pn-ease", tags=["pngnn"], parameters={"method": "pn-ease", "profile": "paper"},
            description="Tune a method on validation only (Optuna, a study per split), save it as a new profile, "
                        "train it on train + validation and evaluate it once on test",
        ),
        reaugment.to_deployment(
            name="weekly", tags=["pngnn", "llm"], schedule=Cron(cron, timezone=tz),
            description="Re-run LLM augmentation, retrain, promote over production when better on recall@20",
        ),
    ]


def main() -> None:
    serve(*deployments(), limit=int(os.environ.get("PNGNN_SERVE_LIMIT", "1")), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
