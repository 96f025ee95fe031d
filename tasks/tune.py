"""Tuning tasks: ``pngnn.app.tune``'s steps as Prefect tasks (``TuneSteps``), for the tune flow; a
study's trials are child runs of the flow's parent run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prefect import task, unmapped

from pngnn.app.study import TuneResult
from pngnn.app.tune import TuneRequest, TuneSteps, save_tuned, test_tuned, tune_seed, tuning_split
from pngnn.core.config import Profile
from pngnn.core.settings import Settings
from pngnn.data.split import SplitData
from tasks.data import ingest_task
from tasks.links import prefect_tags
from tasks.runners import running_on_dask
from tasks.runtime import task_settings
from tasks.storage import per_run_key, result_storage


@task(name="tune-split", task_run_name="tune-{request.method}-seed{seed}")
def tune_split_task(request: TuneRequest, seed: int, parent_run_id: str, split: SplitData | None = None
                    ) -> TuneResult:
    """The study of one split on its validation part (its trials are child runs of the parent);
    ``split``: given on Dask, so the worker never writes the DuckDB file."""
    result = tune_seed(task_settings(), request, seed, parent_run_id, tags=prefect_tags(), split=split)
    print(result.summary())
    return result


def studies(request: TuneRequest, seeds: tuple[int, ...], parent_run_id: str) -> Iterator[tuple[int, TuneResult]]:
    """The studies of ``seeds``: one task after another on threads (today's behaviour: the studies
    share the cores), all at once on Dask, each split carved and loaded here, the one writer."""
    if not running_on_dask():
        for seed in seeds:
            yield seed, tune_split_task(request, seed, parent_run_id)
        return
    settings = Settings.from_env()
    splits = [tuning_split(settings, request, seed) for seed in seeds]
    mapped = tune_split_task.with_options(cache_key_fn=per_run_key, result_storage=result_storage(settings),
                                          persist_result=True)
    futures = mapped.map(unmapped(request), list(seeds), unmapped(parent_run_id), split=splits)
    for seed, future in zip(seeds, futures, strict=True):
        yield seed, future.result()


@task(name="save-profile", task_run_name="save-profile-{request.save_as}")
def save_profile_task(request: TuneRequest, studies: dict[int, TuneResult], parent_run_id: str
                      ) -> tuple[Profile, Path]:
    """The studies' best configurations as the named profile, and its path."""
    return save_tuned(Settings.from_env(), request, studies, parent_run_id)


@task(name="test-tuned", task_run_name="test-{profile.name}-seed{seed}")
def test_tuned_task(profile: Profile, seed: int, parent_run_id: str) -> tuple[dict[str, float], str]:
    """Train the tuned configuration on train + validation, evaluate once on test (registered)."""
    return test_tuned(task_settings(), profile, seed, parent_run_id, tags=prefect_tags())


TASK_STEPS = TuneSteps(ingest=lambda dataset: ingest_task(dataset)["checksum"], studies=studies,
                       save=save_profile_task, test=test_tuned_task)
