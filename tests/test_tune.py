"""Validation-only tuning: studies that never read test, the tuned epoch of graph models, saved profiles."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pngnn.app.study import Budget, tune_split
from pngnn.app.tune import TuneRequest
from pngnn.core.config import Profile, TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.core.profiles import check_new_name, get_profile, load_saved_profile, save_profile
from pngnn.data.split import Interactions, SplitData, create_split, load_split
from pngnn.data.store import Store
from pngnn.evaluation.evaluate import evaluate
from pngnn.training.methods import train_method


@pytest.fixture(scope="module")
def split_with_valid(tmp_path_factory, ml100k_db) -> SplitData:
    import shutil

    path = tmp_path_factory.mktemp("tune") / "db.duckdb"
    shutil.copyfile(ml100k_db, path)
    with Store(path) as store:
        create_split(store, "ml-100k", 1, 0.2, 0.1)
        return load_split(store, "ml-100k", 1)


def poisoned(split: SplitData) -> SplitData:
    """The same split with a test part that would change every score if anything read it:
    every user's test list becomes the 50 most-watched train items, all rated 5."""
    top = np.argsort(-np.bincount(split.train.items, minlength=split.n_items))[:50]
    users = np.repeat(np.arange(split.n_users), len(top))
    items = np.tile(top, split.n_users)
    return replace(split, test=Interactions(users, items, np.full(len(users), 5.0, np.float32)))


def values(result) -> list[tuple]:
    return [(t["params"], t["value"]) for t in result.trials]


def test_a_poisoned_test_part_changes_nothing_in_the_study(split_with_valid):
    budget = Budget(trials=4, sampler_seed=3)
    clean = tune_split(split_with_valid, "ease", TrainConfig(), budget)
    dirty = tune_split(poisoned(split_with_valid), "ease", TrainConfig(), budget)
    assert values(clean) == values(dirty)
    assert clean.best_config == dirty.best_config
    # and the poison is real: scored on that test part, the best model's numbers differ
    model = train_method("ease", split_with_valid, clean.best_config, progress=False).model
    on_poison = evaluate(model.full_sort_predict, split_with_valid.n_items, split_with_valid.train,
                         poisoned(split_with_valid).test)
    assert abs(on_poison["ndcg@20"] - clean.best_value) > 0.05


def test_trial_values_are_validation_scores_and_the_base_configuration_goes_first(split_with_valid):
    base = TrainConfig(ease_lambda=123.0, ease_ratings="liked")
    result = tune_split(split_with_valid, "ease", base, Budget(trials=3, sampler_seed=1), metric="recall@10")
    assert result.trials[0]["params"] == {"ease_lambda": 123.0, "ease_ratings": "liked"}
    best = result.best_config
    model = train_method("ease", split_with_valid, best, progress=False).model
    valid = evaluate(model.full_sort_predict, split_with_valid.n_items, split_with_valid.train, split_with_valid.valid)
    assert valid["recall@10"] == pytest.approx(result.best_value, abs=1e-9)
    assert result.best_value == max(t["value"] for t in result.trials)


def test_a_graph_model_keeps_its_best_validation_epoch(split_with_valid):
    base = TrainConfig(epochs=4, batch_size=4096, n_neg=2, dim=16, layers=1)
    result = tune_split(split_with_valid, "lightgcn", base, Budget(trials=2, sampler_seed=0), eval_every=2,
                        patience=0)
    best_trial = next(t for t in result.trials if t["value"] == result.best_value)
    assert best_trial["best_epoch"] in (2, 4)
    assert result.best_config.epochs == best_trial["best_epoch"]
    assert result.best_config.eval_every == 0 and result.best_config.patience == 0
    assert set(result.best_params) == {"dim", "lr", "l2", "layers"}


def test_a_split_without_validation_part_cannot_be_tuned(ml100k_split):
    with pytest.raises(PngnnError, match=r"no validation part.*--valid-fraction 0.1"):
        tune_split(ml100k_split, "ease", TrainConfig(), Budget(trials=1))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"method": "bpr-mf"}, "unknown method 'bpr-mf'"),
        ({"metric": "mrr@10"}, "unknown tuning metric 'mrr@10'"),
        ({"valid_fraction": 0.0}, "--valid-fraction must lie in"),
        ({"valid_fraction": 1.0}, "--valid-fraction must lie in"),
        ({"overrides": {"dim": 128}}, "--set dim: not a setting ease fixes"),
        ({"overrides": {"epochs": 5}, "method": "pngnn"}, r"--set epochs: .*use --epochs"),
        ({"overrides": {"ease_lambda": -1.0}}, "ease_lambda=-1.0 must be > 0"),
    ],
)
def test_bad_tuning_requests(kwargs, needle):
    with pytest.raises(PngnnError, match=needle):
        TuneRequest(**{"method": "ease", "save_as": "x", **kwargs})


def test_bad_budgets_and_untunable_methods(split_with_valid):
    with pytest.raises(PngnnError, match="at least one trial"):
        Budget(trials=0)
    with pytest.raises(PngnnError, match="must be > 0 seconds"):
        Budget(trials=2, seconds=0)
    with pytest.raises(PngnnError, match="method 'mostpop' has nothing to tune"):
        tune_split(split_with_valid, "mostpop", TrainConfig(), Budget(trials=1))


def tuned_profile(name: str) -> Profile:
    return Profile(name=name, dataset="ml-100k", seeds=(1, 2), train=TrainConfig(ease_lambda=10.0), method="ease",
                   per_seed={1: TrainConfig(ease_lambda=10.0), 2: TrainConfig(ease_lambda=20.0, ease_ratings="liked")})


def test_a_saved_profile_round_trips_and_is_found_by_name(tmp_path, monkeypatch):
    path = save_profile(tuned_profile("ease-x"), tmp_path, {"metric": "ndcg@20"}, "quick")
    loaded = load_saved_profile(path)
    assert loaded == tuned_profile("ease-x")
    assert loaded.config_for(2).ease_ratings == "liked" and loaded.config_for(3).ease_lambda == 10.0
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(tmp_path))
    assert get_profile("ease-x") == loaded
    doc = json.loads(path.read_text())
    assert doc["format"] == 1 and doc["base_profile"] == "quick" and doc["tuning"] == {"metric": "ndcg@20"}


def test_saved_profiles_are_never_overwritten(tmp_path):
    path = save_profile(tuned_profile("ease-x"), tmp_path, {}, "quick")
    before = path.read_text()
    with pytest.raises(PngnnError, match=r"profile 'ease-x' exists already.*another --save-as name"):
        save_profile(tuned_profile("ease-x"), tmp_path, {}, "quick")
    assert path.read_text() == before
    with pytest.raises(PngnnError, match="profile 'paper' is built in"):
        check_new_name("paper", tmp_path)
    with pytest.raises(PngnnError, match="is not a profile name; use letters, digits"):
        check_new_name("../escape", tmp_path)


def test_unreadable_or_foreign_profiles_are_one_line_errors(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(PngnnError, match="format 0"):
        load_saved_profile(tmp_path / "old.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PngnnError, match=r"broken.json is not JSON \(Expecting"):
        load_saved_profile(tmp_path / "broken.json")


def test_the_experiment_flow_trains_each_method_with_its_tuned_profile(tmp_path):
    from pngnn.core.profiles import get_profile, method_profiles
    from pngnn.core.settings import Settings

    settings = Settings(profiles_dir=tmp_path)
    quick = get_profile("quick")
    save_profile(tuned_profile("ease-ml-100k"), tmp_path, {}, "quick")
    save_profile(replace(tuned_profile("ease-other"), per_seed={1: TrainConfig(ease_lambda=99.0)}), tmp_path, {},
                 "quick")
    found = method_profiles(["ease", "lightgcn"], "ml-100k", quick, None, settings)
    assert found["ease"].name == "ease-ml-100k" and found["ease"].config_for(2).ease_lambda == 20.0
    assert found["lightgcn"].name == "quick"
    chosen = method_profiles(["ease"], "ml-100k", quick, {"ease": "ease-other"}, settings)
    assert chosen["ease"].config_for(1).ease_lambda == 99.0
    with pytest.raises(PngnnError, match="unknown profile 'missing'"):
        method_profiles(["ease"], "ml-100k", quick, {"ease": "missing"}, settings)


def recorded_trials(seen: list, what: str = "number"):
    """The in-process trial context, also noting each trial's number (or its params) in ``seen``."""
    from contextlib import contextmanager

    from pngnn.app.study import untracked_trial

    @contextmanager
    def context(number, params):
        seen.append(number if what == "number" else params)
        with untracked_trial(number, params) as log:
            yield log

    return context


def test_an_interrupted_study_resumes_from_its_journal(split_with_valid, tmp_path):
    started: list[int] = []
    counting = recorded_trials(started)
    journal = tmp_path / "studies" / "ease.log"
    first = tune_split(split_with_valid, "ease", TrainConfig(), Budget(trials=2), trial_context=counting,
                       journal=journal, study_name="ease-seed1")
    assert started == [0, 1] and journal.is_file()
    again = tune_split(split_with_valid, "ease", TrainConfig(), Budget(trials=2), trial_context=counting,
                       journal=journal, study_name="ease-seed1")
    assert started == [0, 1]  # nothing to do: both trials are in the journal
    assert values(again) == values(first)
    more = tune_split(split_with_valid, "ease", TrainConfig(), Budget(trials=3), trial_context=counting,
                      journal=journal, study_name="ease-seed1")
    assert started == [0, 1, 2] and len(more.trials) == 3
    assert more.best_value == max(t["value"] for t in more.trials)


def test_a_study_killed_during_its_base_trial_runs_the_base_configuration_again(split_with_valid, tmp_path):
    """A process killed during trial 0 leaves it RUNNING in the journal; the rerun must run the base
    configuration again, not sample its first trial at random."""
    import optuna

    from pngnn.app.study import SEARCH_SPACES, base_values, journal_storage

    journal = tmp_path / "studies" / "ease.log"
    journal.parent.mkdir()
    base = TrainConfig(ease_lambda=123.0)
    killed = optuna.create_study(direction="maximize", study_name="ease-seed1", storage=journal_storage(journal))
    killed.enqueue_trial(base_values(base, SEARCH_SPACES["ease"]))
    killed.ask()  # trial 0 started, never told: what kill -9 leaves
    seen: list[dict] = []
    tune_split(split_with_valid, "ease", base, Budget(trials=2), trial_context=recorded_trials(seen, "params"),
               journal=journal, study_name="ease-seed1")
    assert len(seen) == 2 and seen[0]["ease_lambda"] == 123.0 and seen[1]["ease_lambda"] != 123.0


def test_trial_runs_end_finished_when_pruned_and_failed_when_broken(tmp_path, ml100k_split):
    import mlflow
    import optuna

    from pngnn.core.settings import Settings
    from pngnn.tracking.runs import parent_run, trial_runs

    settings = Settings(mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with parent_run(settings, "ml-100k", "tune-test") as parent_id:
        trial_run = trial_runs(parent_id, ml100k_split, "ease")
        with pytest.raises(optuna.TrialPruned), trial_run(0, {"ease_lambda": 1.0}):
            raise optuna.TrialPruned("pruned at epoch 5")
        with pytest.raises(ValueError), trial_run(1, {"ease_lambda": 2.0}):
            raise ValueError("broken")
        with trial_run(2, {"ease_lambda": 3.0}) as log:
            log.metrics({"valid_ndcg@20": 0.5})
        assert mlflow.active_run().info.run_id == parent_id  # every trial run ended, the parent goes on
    runs = {r.data.tags["trial"]: r for r in mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("pngnn-ml-100k").experiment_id], "tags.kind = 'trial'")}
    states = {n: (r.info.status, r.data.tags["optuna_state"]) for n, r in runs.items()}
    assert states == {"0": ("FINISHED", "PRUNED"), "1": ("FAILED", "FAIL"), "2": ("FINISHED", "COMPLETE")}
    assert runs["2"].data.metrics["valid_ndcg_at_20"] == 0.5


def test_set_values_take_the_type_of_the_setting():
    from pngnn.core.config import parse_overrides

    assert parse_overrides(["dim=128", "l2=0.02", "attention=false", "dual-bpr=siren"]) == {
        "dim": 128, "l2": 0.02, "attention": False, "dual_bpr": "siren"}
    with pytest.raises(PngnnError, match=r"--set 'dim=big': dim takes an integer, e.g. dim=64"):
        parse_overrides(["dim=big"])
    with pytest.raises(PngnnError, match=r"--set 'width=3': expected KEY=VALUE with KEY one of"):
        parse_overrides(["width=3"])
    with pytest.raises(PngnnError, match=r"attention takes true or false"):
        parse_overrides(["attention=maybe"])


def test_a_grid_study_tries_every_point_in_order_and_inverts_once_per_ridge(split_with_valid, monkeypatch, tmp_path):
    """``--grid``: the base configuration, then every grid point in order (the last setting
    fastest); PN-EASE points that differ only in disliked_score share one inversion, and the
    scores are the ones fitting each point afresh gives. A killed grid study resumes where it was."""
    import pngnn.app.study as study
    import pngnn.models.linear as linear

    grid = {"pn_dropout": [0.0], "ease_lambda": [100.0, 400.0], "disliked_input": [1.0],
            "disliked_score": [0.0, 0.5, 1.0]}
    monkeypatch.setitem(study.GRIDS, "pn-ease", grid)
    inversions: list[float] = []
    original = linear.gram_inverse

    def counting(columns, n_users, n_cols, lam, *args, **kwargs):
        inversions.append(lam)
        return original(columns, n_users, n_cols, lam, *args, **kwargs)

    monkeypatch.setattr(linear, "gram_inverse", counting)
    base = TrainConfig(ease_lambda=250.0, disliked_input=1.0, disliked_score=0.25, pn_dropout=0.0)
    journal = tmp_path / "grid.log"
    result = tune_split(split_with_valid, "pn-ease", base, Budget(trials=1, grid=True), journal=journal,
                        study_name="grid")
    tried = [t["params"] for t in result.trials]
    assert tried == [{"ease_lambda": 250.0, "disliked_input": 1.0, "disliked_score": 0.25, "pn_dropout": 0.0},
                     *({"pn_dropout": 0.0, "ease_lambda": lam, "disliked_input": 1.0, "disliked_score": g}
                       for lam in (100.0, 400.0) for g in (0.0, 0.5, 1.0))]
    assert inversions == [250.0, 100.0, 400.0]  # one a ridge: the scores reuse it
    assert result.best_value == max(t["value"] for t in result.trials)
    for trial in result.trials[1:3]:  # a reused inverse scores as a fresh fit does
        cfg = base.with_overrides(**trial["params"])
        model = train_method("pn-ease", split_with_valid, cfg, progress=False).model
        valid = evaluate(model.full_sort_predict, split_with_valid.n_items, split_with_valid.train,
                         split_with_valid.valid)
        assert valid["ndcg@20"] == pytest.approx(trial["value"], abs=1e-9)
    again = tune_split(split_with_valid, "pn-ease", base, Budget(trials=1, grid=True), journal=journal,
                       study_name="grid")
    assert values(again) == values(result)  # resumed: nothing left to try
    with pytest.raises(PngnnError, match="has no grid"):
        TuneRequest.from_flat(method="ials", save_as="x", grid=True)


def test_a_gf_cf_grid_decomposes_once_per_k_and_scores_as_fresh_fits(split_with_valid, monkeypatch):
    """GF-CF's grid varies alpha fastest: points of one (ratings, k) share one eigendecomposition,
    and a point scored from the shared one scores as fitting it afresh does."""
    import pngnn.app.study as study
    import pngnn.models.graph_filter as graph_filter

    grid = {"ease_ratings": ["all"], "gfcf_k": [16, 32], "gfcf_alpha": [0.0, 0.5, 2.0]}
    monkeypatch.setitem(study.GRIDS, "gf-cf", grid)
    decomposed: list[int] = []
    original = graph_filter.eigh

    def counting(matrix, *args, subset_by_index, **kwargs):
        decomposed.append(subset_by_index[1] - subset_by_index[0] + 1)
        return original(matrix, *args, subset_by_index=subset_by_index, **kwargs)

    monkeypatch.setattr(graph_filter, "eigh", counting)
    base = TrainConfig(gfcf_alpha=0.3, gfcf_k=32, ease_ratings="all")
    result = tune_split(split_with_valid, "gf-cf", base, Budget(trials=1, grid=True))
    assert [t["params"]["gfcf_alpha"] for t in result.trials] == [0.3, 0.0, 0.5, 2.0, 0.0, 0.5, 2.0]
    assert decomposed == [32, 16, 32]  # the base point, then one a k
    monkeypatch.setattr(graph_filter, "eigh", original)
    for trial in result.trials[2:4] + result.trials[5:]:  # points that reused a decomposition
        cfg = base.with_overrides(**trial["params"])
        model = train_method("gf-cf", split_with_valid, cfg, progress=False).model
        valid = evaluate(model.full_sort_predict, split_with_valid.n_items, split_with_valid.train,
                         split_with_valid.valid)
        assert valid["ndcg@20"] == pytest.approx(trial["value"], abs=1e-9)
    assert len({round(t["value"], 9) for t in result.trials[1:4]}) > 1  # alpha moves the score
