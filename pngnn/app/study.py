"""Validation-only hyperparameter search with Optuna (TPE), one study per split.

A trial trains on the split's train part and is scored on its validation part (carved from
train, never test); the test part is removed from the split before the study starts, so no
code path of a trial can read it. Graph models report the validation metric every
``eval_every`` epochs, where Optuna's median pruner may stop a trial, and the epoch with the
best validation score is what the tuned configuration keeps. The first trial is always the
base configuration, so a study never ends below its starting point on validation.

The tuned configuration is then trained on train + validation (the plain 80/20 split) and
evaluated once on test by the caller (``pngnn.app.tune``).
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pngnn.core.config import TrainConfig
from pngnn.core.constants import METRICS, TUNE_METRIC
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions, SplitData
from pngnn.evaluation.evaluate import evaluate
from pngnn.models.linear import reuse_inverses
from pngnn.training.methods import METHOD_SETTINGS, check_method, for_dataset, train_method
from pngnn.training.train import EpochLog

log = logging.getLogger(__name__)

SearchSpace = Callable[[Any, TrainConfig], dict[str, Any]]


def ease_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {"ease_lambda": trial.suggest_float("ease_lambda", 20.0, 20000.0, log=True),
            "ease_ratings": trial.suggest_categorical("ease_ratings", ["all", "liked"])}


def edlae_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {"ease_lambda": trial.suggest_float("ease_lambda", 1.0, 20000.0, log=True),
            "edlae_dropout": trial.suggest_float("edlae_dropout", 0.05, 0.9),
            "ease_ratings": trial.suggest_categorical("ease_ratings", ["all", "liked"])}


def gf_cf_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    # α up to 3: a range ending at 1.5 had a split choose 1.44, at its edge (the grid goes to 10).
    return {"gfcf_alpha": trial.suggest_float("gfcf_alpha", 0.0, 3.0),
            "gfcf_k": trial.suggest_int("gfcf_k", 16, 1024, log=True),
            "ease_ratings": trial.suggest_categorical("ease_ratings", ["all", "liked"])}


def pn_ease_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {"ease_lambda": trial.suggest_float("ease_lambda", 20.0, 20000.0, log=True),
            "disliked_input": trial.suggest_float("disliked_input", 0.1, 3.0, log=True),
            "disliked_score": trial.suggest_float("disliked_score", -1.0, 1.5),
            "pn_dropout": trial.suggest_float("pn_dropout", 0.0, 0.7)}


def weighted_ease_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {"ease_lambda": trial.suggest_float("ease_lambda", 20.0, 20000.0, log=True),
            "disliked_input": trial.suggest_float("disliked_input", 0.05, 1.0, log=True),
            "pn_dropout": trial.suggest_float("pn_dropout", 0.0, 0.7)}


# ``pngnn tune --grid``: every point of a log-spaced grid, in this order (the last setting varies
# fastest: PN-EASE's disliked_score only reads P differently, so its points reuse one inversion).
# The positive/negative grids hold their denoising forms too: dropout 0 (plain), 0.25 and 0.5 (EDLAE's
# ridge, which grows with each input's own mass).
_PN_EASE_GRID: dict[str, list[Any]] = {
    "pn_dropout": [0.0, 0.25, 0.5],
    "ease_lambda": [125.0, 250.0, 500.0, 1000.0, 2000.0],
    "disliked_input": [0.25, 0.5, 1.0, 2.0],
    "disliked_score": [-0.25, 0.0, 0.25, 0.5, 1.0],
}
_EASE_LAMBDAS = [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0]
_WEIGHTED_EASE_GRID: dict[str, list[Any]] = {
    "pn_dropout": [0.0, 0.25, 0.5], "disliked_input": [0.25, 0.375, 0.5, 0.75], "ease_lambda": _EASE_LAMBDAS}
# GF-CF: alpha varies fastest, so the points of one (ratings, k) share one eigendecomposition.
_GF_CF_GRID: dict[str, list[Any]] = {
    "ease_ratings": ["all", "liked"], "gfcf_k": [64, 128, 192, 256, 384],
    "gfcf_alpha": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "ease": {"ease_ratings": ["all", "liked"], "ease_lambda": _EASE_LAMBDAS},
    "gf-cf": _GF_CF_GRID,
    "weighted-ease": _WEIGHTED_EASE_GRID,
    "llm-weighted-ease": _WEIGHTED_EASE_GRID,
    "pn-ease": _PN_EASE_GRID,
    "llm-pn-ease": _PN_EASE_GRID,
}


def grid_points(method: str) -> list[dict[str, Any]]:
    """The grid of ``method`` as its points, first setting outermost."""
    if method not in GRIDS:
        raise PngnnError(f"method '{method}' has no grid; --grid takes one of {', '.join(GRIDS)}",
                         "drop --grid to search it with --trials TPE draws")
    grid = GRIDS[method]
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def ials_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {"ials_factors": trial.suggest_categorical("ials_factors", [64, 128, 256, 512]),
            "ials_reg": trial.suggest_float("ials_reg", 1e-3, 100.0, log=True),
            "ials_alpha": trial.suggest_float("ials_alpha", 0.1, 100.0, log=True),
            "ials_ratings": trial.suggest_categorical("ials_ratings", ["all", "liked"])}


def graph_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    # dim 256 is left out: its epoch costs about four times dim 64's on a CPU, so one draw of
    # it would spend most of a study's wall-time budget on a single trial.
    return {"dim": trial.suggest_categorical("dim", [64, 128]),
            "lr": trial.suggest_float("lr", 1e-3, 2e-2, log=True),
            "l2": trial.suggest_float("l2", 1e-4, 0.2, log=True),
            "layers": trial.suggest_int("layers", 1, 4)}


def pngnn_space(trial: Any, base: TrainConfig) -> dict[str, Any]:
    return {**graph_space(trial, base), "b": trial.suggest_float("b", 1.0, 8.0, log=True)}


SEARCH_SPACES: dict[str, SearchSpace] = {
    "ease": ease_space,
    "edlae": edlae_space,
    "gf-cf": gf_cf_space,
    "pn-ease": pn_ease_space,
    "llm-pn-ease": pn_ease_space,
    "weighted-ease": weighted_ease_space,
    "llm-weighted-ease": weighted_ease_space,
    "ials": ials_space,
    "lightgcn": graph_space,
    "llm-lightgcn": graph_space,
    "pngnn": pngnn_space,
    "llm-pngnn": pngnn_space,
}


class TrialLog(Protocol):
    """Where a trial's progress goes (an MLflow child run, or nowhere)."""

    def epoch(self, entry: EpochLog) -> None: ...

    def metrics(self, values: Mapping[str, float]) -> None: ...


class _NoLog:
    def epoch(self, entry: EpochLog) -> None:
        pass

    def metrics(self, values: Mapping[str, float]) -> None:
        pass


TrialContext = Callable[[int, dict[str, Any]], AbstractContextManager[TrialLog]]


@contextmanager
def untracked_trial(number: int, params: dict[str, Any]) -> Iterator[TrialLog]:
    yield _NoLog()


@dataclass(frozen=True)
class Budget:
    """How much a study may spend: trials, and wall seconds (None: no time limit)."""

    trials: int = 20
    seconds: float | None = None
    sampler_seed: int = 0
    grid: bool = False  # every point of the method's grid (``GRIDS``), in order, instead of TPE draws

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise PngnnError(f"a study needs at least one trial, got {self.trials}; try --trials 20")
        if self.seconds is not None and self.seconds <= 0:
            raise PngnnError(f"the time budget must be > 0 seconds, got {self.seconds}; omit it for no limit")


@dataclass
class TuneResult:
    method: str
    dataset: str
    seed: int
    metric: str
    best_value: float
    best_params: dict[str, Any]
    best_config: TrainConfig
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    study: Any = None

    def summary(self) -> str:
        """The study in one line, as ``pngnn tune`` and the tune flow's task print it."""
        return (f"{self.method} {self.dataset} seed {self.seed}: best valid {self.metric} {self.best_value:.4f} "
                f"after {len(self.trials)} trials ({self.seconds:.0f}s): {self.best_params}")

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "dataset": self.dataset, "seed": self.seed, "metric": self.metric,
                "best_value": self.best_value, "best_params": self.best_params,
                "n_trials": len(self.trials), "n_pruned": sum(t["state"] == "PRUNED" for t in self.trials),
                "seconds": round(self.seconds, 1), "trials": self.trials}


def journal_storage(path: Path | None) -> Any:
    """Optuna's append-only journal file (no database server; safe against a killed process)."""
    if path is None:
        return None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise PngnnError(f"unknown tuning metric '{metric}'; choose one of {', '.join(METRICS)}")
    return metric


def validation_only(split: SplitData) -> SplitData:
    """The split without its test part: what every trial sees. A split with no validation
    part cannot be tuned."""
    if not len(split.valid):
        raise PngnnError(
            f"split seed {split.seed} of {split.dataset} has no validation part to tune on; create one with "
            f"`pngnn split {split.dataset} --seed {split.seed} --valid-fraction 0.1` (or pass --valid-fraction to tune)"
        )
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return replace(split, test=empty)


def base_values(base: TrainConfig, space: SearchSpace) -> dict[str, Any]:
    """The base configuration's values of the searched settings that lie inside the space: the
    first, enqueued trial (a value outside it, e.g. dim 16 when dims are 64-256, is sampled)."""
    values = base.to_dict()
    probe = _ProbeTrial()
    space(probe, base)
    return {name: values[name] for name, inside in probe.domains.items() if inside(values[name])}


class _ProbeTrial:
    """Records the domain of every setting a search space asks for, answering with its first choice."""

    def __init__(self) -> None:
        self.domains: dict[str, Callable[[Any], bool]] = {}

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.domains[name] = lambda v: low <= v <= high
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.domains[name] = lambda v: low <= v <= high
        return low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.domains[name] = lambda v: v in choices
        return choices[0]


def tune_split(split: SplitData, method: str, base: TrainConfig, budget: Budget, metric: str = TUNE_METRIC,
               trial_context: TrialContext = untracked_trial, eval_every: int = 5, patience: int = 3,
               progress: bool = False, journal: Path | None = None, study_name: str | None = None) -> TuneResult:
    """One Optuna study on one split's validation part; returns the best configuration.

    Graph models train at most ``base.epochs`` epochs, are scored every ``eval_every`` and may
    stop early (``patience``) or be pruned; the best configuration keeps their best epoch.
    ``journal``: an Optuna journal file that records every finished trial, so a study that was
    interrupted resumes where it stopped (``budget.trials`` counts the trials already there)."""
    import optuna

    method, metric = check_method(method), check_metric(metric)
    if method not in SEARCH_SPACES:
        raise PngnnError(f"method '{method}' has nothing to tune; choose one of {sorted(SEARCH_SPACES)}")
    space = SEARCH_SPACES[method]
    visible = validation_only(split)
    is_graph = "epochs" in METHOD_SETTINGS[method]  # trained by epochs: scored, stopped and pruned on the way

    def objective(trial: optuna.Trial) -> float:
        params = space(trial, base)
        overrides = {"eval_every": eval_every, "patience": patience, "valid_metric": metric} if is_graph else {}
        cfg = base.with_overrides(**params, **overrides)
        with trial_context(trial.number, params) as trial_log:

            def on_epoch(entry: EpochLog) -> None:
                trial_log.epoch(entry)
                if entry.valid:
                    trial.report(entry.valid[metric], entry.epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at epoch {entry.epoch}")

            result = train_method(method, visible, cfg, on_epoch=on_epoch if is_graph else None, progress=progress)
            scores = evaluate(result.model.scorer(), visible.n_items, visible.train, visible.valid,
                              for_dataset(cfg, visible).threshold)
            trial_log.metrics({f"valid_{k}": v for k, v in scores.items()})
            trial.set_user_attr("best_epoch", result.best_epoch)
            log.info("trial %d %s: valid %s %.5f", trial.number, params, metric, scores[metric])
            return scores[metric]

    sampler = optuna.samplers.TPESampler(seed=budget.sampler_seed, n_startup_trials=max(2, budget.trials // 4),
                                         multivariate=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=eval_every)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                    study_name=study_name or f"{method}-{split.dataset}-seed{split.seed}",
                                    storage=journal_storage(journal), load_if_exists=True)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    start = base_values(base, space)
    points = [start, *(p for p in grid_points(method) if p != start)] if budget.grid else [start]
    # The base configuration is the first trial (then, with a grid, its points in order). A study
    # killed during one left it RUNNING (or FAIL): enqueue it again, else the resumed study would
    # sample it at random.
    done_or_queued = (*finished, optuna.trial.TrialState.WAITING)
    for point in points:
        if not any(t.system_attrs.get("fixed_params") == point and t.state in done_or_queued for t in study.trials):
            study.enqueue_trial(point)
    planned = len(points) if budget.grid else budget.trials
    remaining = planned - sum(t.state in finished for t in study.trials)
    if study.trials:
        log.info("study %s resumes with %d of %d trials done", study.study_name, planned - remaining, planned)
    t0 = time.perf_counter()
    if remaining > 0:
        with reuse_inverses() if budget.grid else nullcontext():
            study.optimize(objective, n_trials=remaining, timeout=budget.seconds, catch=(),
                           show_progress_bar=progress)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise PngnnError(f"no trial of {method} on split {split.seed} completed within the budget; "
                         "raise --trials or --timeout")
    best = study.best_trial
    assert best.value is not None, "the best trial is a completed one"
    tuned = {name: value for name, value in best.params.items() if name in METHOD_SETTINGS[method]}
    epochs = {"epochs": max(1, int(best.user_attrs["best_epoch"]))} if is_graph else {}
    best_config = base.with_overrides(**tuned, **epochs, eval_every=0, patience=0)
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               **({"best_epoch": t.user_attrs["best_epoch"]} if "best_epoch" in t.user_attrs and is_graph else {})}
              for t in study.trials if t.state in finished]
    return TuneResult(method, split.dataset, split.seed, metric, float(best.value), dict(best.params),
                      best_config, trials, time.perf_counter() - t0, study)
