"""Tuning tasks over ``pngnn.tune``: a split's study (trials as child runs of the flow's parent
run), the saved profile, the single test evaluation; plain data crosses between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from flows.links import prefect_tags
from pngnn.config import get_profile
from pngnn.settings import Settings
from pngnn.study import TuneResult
from pngnn.tune import TuneRequest, save_tuned, test_tuned, tune_seed
from tasks.runtime import task_settings


@task(name="tune-split", task_run_name="tune-{method}-seed{seed}")
def tune_split_task(method: str, seed: int, request: dict[str, Any], parent_run_id: str) -> TuneResult:
    """The study of one split on its validation part (its trials are child runs of the parent)."""
    result = tune_seed(task_settings(), TuneRequest.from_flat(**request), seed, parent_run_id, tags=prefect_tags())
    print(result.summary())
    return result


@task(name="save-profile", task_run_name="save-profile-{name}")
def save_profile_task(name: str, request: dict[str, Any], studies: dict[int, TuneResult], parent_run_id: str) -> str:
    """The studies' best configurations as the named profile; returns its path."""
    profile, path = save_tuned(Settings.from_env(), TuneRequest.from_flat(**request), studies, parent_run_id)
    print(f"saved profile '{profile.name}' -> {path}")
    return str(path)


@task(name="test-tuned", task_run_name="test-{profile}-seed{seed}")
def test_tuned_task(profile: str, seed: int, parent_run_id: str, results_dir: str | None = None) -> dict[str, float]:
    """Train the tuned configuration on train + validation, evaluate once on test (registered)."""
    settings = task_settings()
    run, line = test_tuned(settings, get_profile(profile, settings), seed, parent_run_id,
                           Path(results_dir) if results_dir else None, tags=prefect_tags())
    print(line)
    return run.metrics
