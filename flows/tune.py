"""Validation-only tuning as a flow (``pngnn.app.tune``'s steps as tasks): a study per split seed
whose trials are child runs of one parent run, the saved profile, one test evaluation each
(registered; production only when the model has none). The same steps without Prefect: ``pngnn tune``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from pngnn.app.tune import TuneRequest, studies_table, tune_profile
from pngnn.core.constants import TUNE_METRIC
from pngnn.core.profiles import get_profile, new_profile_name
from pngnn.core.settings import Settings
from tasks.links import artifact_key, prefect_tags, publish_run_links
from tasks.runners import SettingsTaskRunner
from tasks.tune import TASK_STEPS


@flow(name="tune", log_prints=True, task_runner=SettingsTaskRunner())
def tune(
    method: str = "weighted-ease",
    save_as: str | None = None,
    profile: str = "paper",
    dataset: str | None = None,
    seeds: list[int] | None = None,
    trials: int = 20,
    timeout_seconds: float | None = None,
    metric: str = TUNE_METRIC,
    valid_fraction: float = 0.1,
    max_epochs: int | None = None,
    test: bool = True,
    grid: bool = False,
) -> dict[str, Any]:
    """Tune ``method`` on the validation part of each split seed, save profile ``save_as``, test it.

    Without ``save_as`` (a scheduled deployment) each run saves a new profile named
    ``<method>-<dataset>-<UTC time>``. ``grid``: every point of the method's log-spaced grid instead
    of ``trials`` TPE draws (``pngnn tune --grid``)."""
    settings = Settings.from_env()
    save_as = save_as or new_profile_name(method, dataset or get_profile(profile, settings).dataset)
    request = TuneRequest.from_flat(method=method, save_as=save_as, base_profile=profile, dataset=dataset,
                                    seeds=seeds, trials=trials, timeout_seconds=timeout_seconds, metric=metric,
                                    valid_fraction=valid_fraction, max_epochs=max_epochs, grid=grid)
    out = tune_profile(settings, request, evaluate_on_test=test, steps=TASK_STEPS, tags=prefect_tags())
    publish_run_links(settings, out.parent_run_id, f"tune {method} -> profile {save_as}",
                      studies_table(out.studies, out.tests),
                      key=artifact_key("tune", method, dataset or get_profile(profile, settings).dataset))
    return {"parent_run_id": out.parent_run_id, "profile_path": str(out.profile_path),
            "best": {seed: s.best_params for seed, s in out.studies.items()}, "test": out.tests}

if __name__ == "__main__":
    print(tune())
