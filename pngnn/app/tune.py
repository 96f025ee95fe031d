"""``pngnn tune`` end to end: a study per split seed on validation, a saved profile, one test evaluation.

1. Each split seed gets a validation part carved from its train part (``valid_fraction``) and
   its own Optuna study (``pngnn.app.study``); every trial is a child MLflow run under one parent
   run, which also gets each study's plots and trials.
2. The best configuration of every seed is saved as a named profile (``pngnn.core.profiles``).
3. Optionally, each seed's configuration is trained on train + validation (the plain 80/20
   split) and evaluated once on test, as child runs of the same parent; the models are
   registered, and the first version of a model takes the ``production`` alias. A later one
   does not take it for its test metrics: that would choose the served model on test.

Nothing in steps 1-2 reads a test part (``pngnn.app.study.validation_only`` drops it), so the
choice of configuration cannot depend on test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pngnn.app.study import Budget, TuneResult, check_metric, grid_points, tune_split
from pngnn.augment.edges import load_split_step
from pngnn.core.config import Profile, TrainConfig
from pngnn.core.constants import TUNE_METRIC
from pngnn.core.errors import PngnnError
from pngnn.core.profiles import check_new_name, get_profile, save_profile
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.data.split import SplitData
from pngnn.evaluation.results import check_replaceable, result_path, write_per_user, write_result
from pngnn.tracking.registry import model_name, promote_if_none
from pngnn.training.device import use_device
from pngnn.training.methods import METHOD_SETTINGS, check_method

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneRequest:
    """What to tune, where, and with which budget; ``save_as``: the new profile's name."""

    method: str
    save_as: str
    base_profile: str = "paper"
    dataset: str | None = None
    seeds: tuple[int, ...] | None = None
    budget: Budget = field(default_factory=Budget)
    metric: str = TUNE_METRIC
    valid_fraction: float = 0.1
    max_epochs: int | None = None
    # Fixed settings over the base profile's (``pngnn tune --set dim=128``): the first trial is the
    # base configuration with them, and a setting outside the search space keeps its value throughout.
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_flat(cls, trials: int = 20, timeout_seconds: float | None = None, sampler_seed: int = 0,
                  seeds: Iterable[int] | None = None, grid: bool = False, **fields: Any) -> TuneRequest:
        """From flat parameters, as ``pngnn tune`` and the tune flow take them (no seeds: the profile's)."""
        seeds = tuple(seeds or ())
        return cls(budget=Budget(trials, timeout_seconds, sampler_seed, grid), seeds=seeds or None, **fields)

    def __post_init__(self) -> None:
        check_method(self.method)
        check_metric(self.metric)
        if not 0 < self.valid_fraction < 1:
            raise PngnnError(f"tuning reads only a validation part carved from train: --valid-fraction must lie in "
                             f"(0, 1), got {self.valid_fraction}; try 0.1")
        foreign = sorted(set(self.overrides) - set(METHOD_SETTINGS[self.method]) | ({"epochs"} & set(self.overrides)))
        if foreign:
            raise PngnnError(f"--set {foreign[0]}: not a setting {self.method} fixes (epochs: use --epochs); "
                             f"valid names are {sorted(set(METHOD_SETTINGS[self.method]) - {'epochs'})}")
        TrainConfig().with_overrides(**self.overrides)  # types and ranges checked now, before any work
        if self.budget.grid:
            grid_points(self.method)  # a method without a grid: one line now, before any work


@dataclass
class TuneOutcome:
    profile: Profile
    profile_path: Path
    studies: dict[int, TuneResult]
    parent_run_id: str
    tests: dict[int, dict[str, float]] = field(default_factory=dict)  # test metrics per split seed


@dataclass(frozen=True)
class TuneSteps:
    """How ``tune_profile`` runs its steps: in this process (``pngnn tune``) or as an orchestrator's
    tasks (the tune flow passes Prefect tasks), so both take one path through the same checks,
    parent run and order. What crosses a step is plain data (the request, a study's record)."""

    ingest: Callable[[str], str]  # dataset -> its checksum
    # (request, seeds, parent run) -> (seed, study) as each study ends, one after another or at once
    studies: Callable[[TuneRequest, tuple[int, ...], str], Iterator[tuple[int, TuneResult]]]
    save: Callable[[TuneRequest, dict[int, TuneResult], str], tuple[Profile, Path]]
    test: Callable[[Profile, int, str], tuple[dict[str, float], str]]  # -> (test metrics, one line)

    @classmethod
    def in_process(cls, settings: Settings, results_dir: Path | None = None, progress: bool = False) -> TuneSteps:
        return cls(ingest=lambda dataset: ingest_step(settings, dataset).checksum,
                   studies=lambda request, seeds, parent: ((seed, tune_seed(settings, request, seed, parent, progress))
                                                           for seed in seeds),
                   save=lambda request, studies, parent: save_tuned(settings, request, studies, parent),
                   test=lambda profile, seed, parent: test_tuned(settings, profile, seed, parent, results_dir,
                                                                 progress))


def journal_path(settings: Settings, save_as: str) -> Path:
    """Where the studies of an unfinished ``pngnn tune --save-as NAME`` are journaled: a rerun
    with the same name resumes them (finished trials are not run again)."""
    return settings.studies_dir / f"{save_as}.log"


def tuning_split(settings: Settings, request: TuneRequest, seed: int) -> SplitData:
    """Split ``seed`` with its validation part carved from train (written to DuckDB once)."""
    base = get_profile(request.base_profile, settings)
    dataset = request.dataset or base.dataset
    split_step(settings, dataset, seed, **{**base.split_args(), "valid_fraction": request.valid_fraction})
    return load_split_step(settings, dataset, seed)


def tune_seed(settings: Settings, request: TuneRequest, seed: int, parent_run_id: str,
              progress: bool = False, tags: Mapping[str, str] | None = None,
              split: SplitData | None = None) -> TuneResult:
    """Run the study of split ``seed`` on its validation part, log it on the parent run
    (``tags``: extra tags of every trial run, e.g. the orchestrator's run). ``split``: the
    ``tuning_split``, when the caller loaded it (a Dask worker never writes the DuckDB file)."""
    from pngnn.tracking.runs import log_study, trial_runs

    base = get_profile(request.base_profile, settings)
    split = split or tuning_split(settings, request, seed)
    trials = trial_runs(parent_run_id, split, request.method, tags)
    with use_device(settings.device):
        result = tune_split(split, request.method,
                            base.train.with_overrides(**{**request.overrides, "epochs": request.max_epochs}),
                            request.budget, request.metric, trial_context=trials,
                            progress=progress, journal=journal_path(settings, request.save_as),
                            study_name=f"{request.save_as}-seed{seed}")
    log_study(result, f"seed{seed}", parent_run_id)
    return result


def save_tuned(settings: Settings, request: TuneRequest, studies: dict[int, TuneResult],
               parent_run_id: str) -> tuple[Profile, Path]:
    """The studies' best configurations as the profile ``request.save_as`` (plain 80/20 splits)."""
    from pngnn.tracking.runs import log_file

    base = get_profile(request.base_profile, settings)
    seeds = tuple(studies)
    profile = Profile(name=request.save_as, dataset=request.dataset or base.dataset, seeds=seeds,
                      train=studies[seeds[0]].best_config, test_fraction=base.test_fraction, valid_fraction=0.0,
                      split_protocol=base.split_protocol, last_n=base.last_n,
                      method=request.method, per_seed={seed: r.best_config for seed, r in studies.items()})
    tuning = {"metric": request.metric, "valid_fraction": request.valid_fraction, "overrides": dict(request.overrides),
              "trials": request.budget.trials, "timeout_seconds": request.budget.seconds,
              "sampler_seed": request.budget.sampler_seed, "grid": request.budget.grid,
              "mlflow_parent_run_id": parent_run_id,
              "studies": {str(s): {k: v for k, v in r.record().items() if k != "trials"} for s, r in studies.items()}}
    path = save_profile(profile, settings.profiles_dir, tuning, request.base_profile)
    log_file(parent_run_id, path, "profile")
    journal_path(settings, request.save_as).unlink(missing_ok=True)  # done: the studies live in MLflow now
    return profile, path


def results_tag(name: str, method: str, dataset: str) -> str:
    """The results folder of a tuned profile's test runs: ``<method>-tuned`` for the canonical
    ``<method>-<dataset>`` profile, ``<method>-tuned-<name>`` for any other, so a second study never
    overwrites the first one's results (profile names are never reused)."""
    return "tuned" if name == f"{method}-{dataset}" else f"tuned-{name}"


def test_tuned(settings: Settings, profile: Profile, seed: int, parent_run_id: str,
               results_dir: Path | None = None, progress: bool = False,
               tags: Mapping[str, str] | None = None) -> tuple[dict[str, float], str]:
    """Train the profile's configuration for ``seed`` on train + validation, evaluate it once on
    test (a registered child run), production when the model has none; (test metrics, one-line summary)."""
    from pngnn.tracking.runs import tracked_run

    method = check_method(profile.method or "")
    split_step(settings, profile.dataset, seed, **profile.split_args())
    split = load_split_step(settings, profile.dataset, seed)
    run = tracked_run(settings, split, method, profile.config_for(seed), profile=profile.name,
                      parent_run_id=parent_run_id, progress=progress,
                      registered_name=model_name(profile.dataset, method), tags={"kind": "test", **(tags or {})})
    promotion = promote_if_none(settings, profile.dataset, method, run.run_id or "")
    said = promotion.describe() if promotion is not None else (
        "production unchanged (a test metric never moves it; the reaugment deployment decides on validation)")
    where = ""
    if results_dir is not None:
        record = {**run.record(), "profile": profile.name, "tuning_parent_run_id": parent_run_id}
        tag = results_tag(profile.name, method, profile.dataset)
        path = write_result(results_dir, record, tag, force=True)  # checked when the study began
        write_per_user(path, run.per_user)
        where = f" -> {path}"
    return run.metrics, f"{run.summary(' test')}{where}; {said}"


def parent_params(request: TuneRequest, dataset: str, seeds: tuple[int, ...], checksum: str) -> dict[str, Any]:
    return {"method": request.method, "dataset": dataset, "seeds": ",".join(map(str, seeds)),
            "base_profile": request.base_profile, "metric": request.metric, "valid_fraction": request.valid_fraction,
            "trials": request.budget.trials, "timeout_seconds": request.budget.seconds,
            "sampler_seed": request.budget.sampler_seed, "dataset_checksum": checksum}


def studies_table(studies: Mapping[int, TuneResult], tests: Mapping[int, Mapping[str, float]]) -> str:
    """One row per split: the best validation value, its settings and (when tested) test NDCG@20."""
    import polars as pl

    from pngnn.evaluation.tables import to_markdown

    return to_markdown(pl.DataFrame([
        {"split": seed, "best valid": f"{s.best_value:.4f}", **{k: str(v) for k, v in s.best_params.items()},
         **({"test ndcg@20": f"{tests[seed]['ndcg@20']:.4f}"} if seed in tests else {})}
        for seed, s in studies.items()]))


def tune_profile(
    settings: Settings,
    request: TuneRequest,
    evaluate_on_test: bool = True,
    results_dir: Path | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = False,
    steps: TuneSteps | None = None,
    tags: Mapping[str, str] | None = None,
) -> TuneOutcome:
    """Tune ``request.method`` on each split seed's validation part, save the profile, then
    (``evaluate_on_test``) train it on train + validation and evaluate it on test, all under one
    parent run (``tags``: extra tags of it). ``steps``: default, in this process."""
    import mlflow

    from pngnn.tracking.runs import parent_run

    steps = steps or TuneSteps.in_process(settings, results_dir, progress)
    base = get_profile(request.base_profile, settings)
    dataset = request.dataset or base.dataset
    seeds = tuple(request.seeds or base.seeds)
    check_new_name(request.save_as, settings.profiles_dir)  # before any work, not after an hour of it
    if evaluate_on_test and results_dir is not None:
        tag = results_tag(request.save_as, request.method, dataset)
        for seed in seeds:  # a study of an hour must not end on a file it may not replace
            check_replaceable(result_path(results_dir, dataset, request.method, seed, tag))
    run_tags = {"flow": "tune", "profile": request.save_as, "method": request.method, **(tags or {})}
    with parent_run(settings, dataset, f"tune-{request.method}-{request.save_as}", tags=run_tags,
                    run_key=f"tune-{request.method}-{dataset}-{request.save_as}") as parent_id:
        mlflow.log_params(parent_params(request, dataset, seeds, steps.ingest(dataset)))
        studies: dict[int, TuneResult] = {}
        for seed, result in steps.studies(request, seeds, parent_id):
            studies[seed] = result
            echo(result.summary())
        studies = {seed: studies[seed] for seed in seeds}  # the profile's seeds in their order
        profile, path = steps.save(request, studies, parent_id)
        echo(f"saved profile '{profile.name}' -> {path}")
        outcome = TuneOutcome(profile, path, studies, parent_id)
        for seed in seeds if evaluate_on_test else ():
            outcome.tests[seed], line = steps.test(profile, seed, parent_id)
            echo(line)
    return outcome
