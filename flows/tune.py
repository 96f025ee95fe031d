"""Validation-only tuning as a flow (``pngnn.tune``'s steps as tasks): a study per split seed
whose trials are child runs of one parent run, the saved profile, one test evaluation each
(registered, promoted when better). The same steps without Prefect: ``pngnn tune``.
"""

from __future__ import annotations

from typing import Any

import mlflow
from prefect import flow

from flows.links import prefect_tags, publish_run_links
from pngnn.config import get_profile
from pngnn.constants import TUNE_METRIC
from pngnn.profiles import check_new_name, new_profile_name
from pngnn.settings import Settings
from pngnn.tracking import parent_run
from pngnn.tune import TuneRequest, parent_params, studies_table
from tasks.data import ingest_task
from tasks.tune import save_profile_task, test_tuned_task, tune_split_task


@flow(name="tune", log_prints=True)
def tune(
    method: str = "pn-ease",
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
) -> dict[str, Any]:
    """Tune ``method`` on the validation part of each split seed, save profile ``save_as``, test it.

    Without ``save_as`` (a scheduled deployment) each run saves a new profile named
    ``<method>-<dataset>-<UTC time>``."""
    settings = Settings.from_env()
    base = get_profile(profile, settings)
    ds = dataset or base.dataset
    save_as = save_as or new_profile_name(method, ds)
    params = {"method": method, "save_as": save_as, "base_profile": profile, "dataset": dataset, "seeds": seeds,
              "trials": trials, "timeout_seconds": timeout_seconds, "metric": metric,
              "valid_fraction": valid_fraction, "max_epochs": max_epochs}
    request = TuneRequest.from_flat(**params)  # validates every parameter before any work
    check_new_name(save_as, settings.profiles_dir)
    seed_list = tuple(seeds or base.seeds)
    tags = {"flow": "tune", "profile": save_as, "method": method, **prefect_tags()}
    with parent_run(settings, ds, f"tune-{method}-{save_as}", tags=tags) as parent_id:
        data = ingest_task(ds)
        mlflow.log_params(parent_params(request, ds, seed_list, data["checksum"]))
        studies = {seed: tune_split_task(method, seed, params, parent_id) for seed in seed_list}
        path = save_profile_task(save_as, params, studies, parent_id)
        tests = {seed: test_tuned_task(save_as, seed, parent_id) for seed in seed_list} if test else {}
    publish_run_links(settings, parent_id, f"tune {method} -> profile {save_as}", studies_table(studies, tests))
    return {"parent_run_id": parent_id, "profile_path": path,
            "best": {seed: s.best_params for seed, s in studies.items()}, "test": tests}


if __name__ == "__main__":
    print(tune())
