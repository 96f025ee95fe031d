"""The model task: one method on one split as one MLflow child run, through
``pngnn.tracking.runs.tracked_run`` (the path ``pngnn train --track`` takes too)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pngnn.augment.edges import EdgeSource, load_split_step
from pngnn.core.config import TrainConfig
from pngnn.data.split import SplitData
from pngnn.tracking.registry import model_name, promote_if_none
from pngnn.tracking.runs import tracked_run
from pngnn.training.methods import NEEDS_AUGMENTATION
from tasks.links import prefect_tags
from tasks.runtime import task_settings


@task(name="train-evaluate", task_run_name="train-{method}-{dataset}-seed{seed}", cache_policy=NO_CACHE)
def train_evaluate_task(dataset: str, seed: int, method: str, config: dict[str, Any], profile: str,
                        parent_run_id: str | None = None, tags: dict[str, str] | None = None,
                        register: bool = True, promote_first: bool = True, split: SplitData | None = None
                        ) -> dict[str, Any]:
    """Train, evaluate by full ranking on test, log it all, register the model as
    ``pngnn-<dataset>-<method>`` (unless ``register`` is False); the run id and metrics out.

    ``promote_first``: a first registered version takes the ``production`` alias (so serving works
    after the first pipeline run); False where the flow decides promotion itself (reaugment).
    ``tags``: extra run tags; an llm- method trains on the edges of the LLM model and prompt
    version they name. ``split``: the split itself, loaded by the flow's process (a Dask worker
    then never opens the DuckDB file for it); default: loaded here."""
    settings = task_settings()
    if split is None:
        edges = EdgeSource.from_tags(tags) if method in NEEDS_AUGMENTATION else None
        split = load_split_step(settings, dataset, seed, edges)
    run = tracked_run(settings, split, method, TrainConfig(**config), profile=profile, parent_run_id=parent_run_id,
                      progress=False, registered_name=model_name(dataset, method) if register else None,
                      tags={**prefect_tags(), **(tags or {})})
    if register and promote_first:
        promotion = promote_if_none(settings, dataset, method, run.run_id or "")
        if promotion is not None:
            print(promotion.describe())
    print(run.summary() + (f", {run.edges}" if run.edges else ""))
    return {"run_id": run.run_id, "metrics": run.metrics}
