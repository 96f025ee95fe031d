"""The LLM tasks over ``pngnn.augment``: the candidate LightGCN, the LLM's answers, their merge.

Too many prompts without a usable answer fail the augment task before anything is merged; when
transient failures (429, 5xx, timeouts) decide it, the error is a ``TransientError`` and the
task's retries ask them again.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pngnn.augment.incremental import reaugment_split
from pngnn.augment.step import augment_step, merge_step, pretrain_step
from pngnn.core.settings import LLMSettings, Scoring, Settings
from pngnn.data.split import SplitData
from tasks.cache import PRETRAIN_CACHE
from tasks.data import retry_when
from tasks.runtime import task_settings

_retry_unless_user_error = retry_when(Exception)  # any other error: a crashed or restarted LLM server
AUGMENT_RETRY_DELAYS = (10, 60)  # seconds before each retry of a split's augmentation


@task(name="augment", task_run_name="augment-{dataset}-seed{seed}", retries=len(AUGMENT_RETRY_DELAYS),
      retry_delay_seconds=list(AUGMENT_RETRY_DELAYS), retry_condition_fn=_retry_unless_user_error,
      cache_policy=NO_CACHE)
def augment_task(dataset: str, seed: int, llm: LLMSettings, run_id: str | None = None,
                 split: SplitData | None = None) -> dict[str, Any]:
    """Ask the LLM about each sampled user's candidates (answers cached in DuckDB); counts out.

    ``run_id``: the MLflow run recorded as the edges' provenance (the flow's parent run). The
    answers become edges in ``merge_task``, a step of its own (retried and recorded apart).
    ``split``: the split the flow loaded (default: read here).
    """
    counts = augment_step(Settings.from_env(), dataset, seed, LLMSettings.model_validate(llm), progress=False,
                          run_id=run_id, merge=False, split=split)
    print(f"{dataset} seed {seed}: augmentation {counts}")
    return counts


@task(name="pretrain", task_run_name="pretrain-lightgcn-{dataset}-seed{seed}", cache_policy=PRETRAIN_CACHE)
def pretrain_task(dataset: str, seed: int, llm: LLMSettings, split: SplitData | None = None) -> dict[str, Any]:
    """Train the candidate LightGCN and store each sampled user's top-N unseen items in DuckDB.

    Cached on its inputs (the ``split`` the flow loaded aside) and the DuckDB file's identity, so a
    rerun of the flow skips it."""
    llm = LLMSettings.model_validate(llm)
    result = pretrain_step(task_settings(), dataset, seed, llm.users, users_by=llm.users_by, progress=False,
                           split=split, candidate_profile=llm.candidates_profile)
    print(f"{dataset} seed {seed}: candidates {result}")
    return result


@task(name="merge", task_run_name="merge-{dataset}-seed{seed}")
def merge_task(dataset: str, seed: int, model: str, run_id: str | None = None,
               scoring: Scoring = "answer") -> dict[str, Any]:
    """Cached answers -> augmented edges in DuckDB (and Parquet in the MLflow run ``run_id``), the
    likes chosen by ``scoring`` (``LLMSettings.scoring``); counts out."""
    counts = merge_step(Settings.from_env(), dataset, seed, model, run_id, scoring=scoring)
    print(f"{dataset} seed {seed}: merged {counts}")
    return counts


@task(name="reaugment", task_run_name="reaugment-{split.dataset}-seed{split.seed}",
      retries=len(AUGMENT_RETRY_DELAYS), retry_delay_seconds=list(AUGMENT_RETRY_DELAYS),
      retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)
def reaugment_task(split: SplitData, llm: LLMSettings, budget: int, run_id: str | None = None) -> dict[str, Any]:
    """Ask the new and changed users (at most ``budget`` prompts), drop the answers of changed users
    who wait, merge (``pngnn.augment.incremental``); counts out."""
    counts = reaugment_split(task_settings(), split, LLMSettings.model_validate(llm), budget, run_id=run_id)
    print(f"{split.dataset} seed {split.seed}: asked {counts['asked_users']} of {counts['new_users']} new and "
          f"{counts['changed_users']} changed users (budget {budget}); {counts['unchanged_users']} unchanged keep "
          f"their answers, {counts['waiting_users']} wait for the next run")
    return counts
