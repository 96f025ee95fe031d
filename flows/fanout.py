"""``augment_split`` with the LLM step fanned out over mapped chunk tasks (``tasks/llm_fanout.py``).

The same steps and records as ``flows.common.augment_split`` (pretrain, cached; augment; merge;
the counts as ``augment_seed<N>_*`` metrics of the parent run; the edges' tags), except that the
augmentation runs in the flow's process and maps its prompts over the task runner's workers.
``run_grid`` picks it when ``tasks.llm_fanout.fans_out`` says so.
"""

from __future__ import annotations

import time

import mlflow
from mlflow.entities import Metric

from pngnn.augment.step import edges_line
from pngnn.settings import LLMSettings, Settings
from pngnn.steps import EdgeSource
from tasks.augment import merge_task, pretrain_task
from tasks.llm_fanout import fanout_augment


def augment_split_fanout(dataset: str, seed: int, llm: LLMSettings, parent_run_id: str) -> dict[str, str]:
    """pretrain (cached) -> augment in mapped chunks (answers cached in DuckDB) -> merge, for one
    split; returns the MLflow tags of the runs trained on these edges."""
    llm = LLMSettings.model_validate(llm)
    pretrain_task(dataset, seed, llm)
    counts = fanout_augment(Settings.from_env(), dataset, seed, llm)
    counts.update(merge_task(dataset, seed, counts["model"], parent_run_id))
    print(edges_line(dataset, seed, counts))
    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(parent_run_id, metrics=[
        Metric(f"augment_seed{seed}_{k}", float(v), now, 0) for k, v in counts.items()
        if isinstance(v, int | float) and not isinstance(v, bool)])
    return EdgeSource.of(llm, counts).tags()
