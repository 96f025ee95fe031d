"""Tuning tasks: ``pngnn.tune``'s steps as Prefect tasks (``TuneSteps``), for the tune flow; a
study's trials are child runs of the flow's parent run."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from flows.links import prefect_tags
from pngnn.config import Profile
from pngnn.settings import Settings
from pngnn.study import TuneResult
from pngnn.tune import TuneRequest, TuneSteps, save_tuned, test_tuned, tune_seed
from tasks.data import ingest_task
from tasks.runtime import task_settings


@task(name="tune-split", task_run_name="tune-{request.method}-seed{seed}")
def tune_split_task(request: TuneRequest, seed: int, parent_run_id: str) -> TuneResult:
    """The study of one split on its validation part (its trials are child runs of the parent)."""
    result = tune_seed(task_settings(), request, seed, parent_run_id, tags=prefect_tags())
    print(result.summary())
    return result


@task(name="save-profile", task_run_name="save-profile-{request.save_as}")
def save_profile_task(request: TuneRequest, studies: dict[int, TuneResult], parent_run_id: str
                      ) -> tuple[Profile, Path]:
    """The studies' best configurations as the named profile, and its path."""
    return save_tuned(Settings.from_env(), request, studies, parent_run_id)


@task(name="test-tuned", task_run_name="test-{profile.name}-seed{seed}")
def test_tuned_task(profile: Profile, seed: int, parent_run_id: str) -> tuple[dict[str, float], str]:
    """Train the tuned configuration on train + validation, evaluate once on test (registered)."""
    return test_tuned(task_settings(), profile, seed, parent_run_id, tags=prefect_tags())


TASK_STEPS = TuneSteps(ingest=lambda dataset: ingest_task(dataset)["checksum"], study=tune_split_task,
                       save=save_profile_task, test=test_tuned_task)
