"""Registry tasks: compare a new model version with production and promote the better one."""

from __future__ import annotations

from typing import Any

from prefect import task

from pngnn.core.settings import Settings
from pngnn.data.split import SplitData
from pngnn.tracking.holdout import Holdout, promote_on_holdout
from pngnn.tracking.pyfunc import catalog
from pngnn.tracking.registry import PROMOTION_METRIC, promote_if_better


@task(name="promote", task_run_name="promote-{method}-{dataset}-if-better")
def promote_task(dataset: str, method: str, run_id: str, metric: str = PROMOTION_METRIC) -> dict[str, Any]:
    """Alias ``production`` -> the run's model version when it beats the current one on ``metric``."""
    result = promote_if_better(Settings.from_env(), dataset, method, run_id, metric)
    print(result.describe())
    return result.as_dict()


@task(name="promote-on-holdout", task_run_name="promote-{method}-{dataset}-on-holdout")
def holdout_promote_task(dataset: str, method: str, run_id: str, split: SplitData) -> dict[str, Any]:
    """Alias ``production`` -> the run's model version when it beats production on ``split``'s
    validation part (``pngnn.tracking.holdout``), never on test."""
    settings = Settings.from_env()
    users, items = catalog(settings, dataset)
    result = promote_on_holdout(settings, dataset, method, run_id, Holdout.of(split, users, items))
    print(result.describe())
    return result.as_dict()
