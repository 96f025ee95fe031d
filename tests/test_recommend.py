"""`pngnn recommend` logic against a real (sqlite) MLflow registry and the ML-100K DuckDB file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings
from pngnn.data.store import Store
from pngnn.tracking.recommend import recommend
from pngnn.tracking.registry import PRODUCTION, model_name, promote_if_better, resolve
from pngnn.training.methods import seen_items
from pngnn.training.train import build_most_popular


@pytest.fixture(scope="module")
def registry(tmp_path_factory, ml100k_db, ml100k_split):
    """Two registered versions of pngnn-ml-100k-mostpop, with different recall@20."""
    import mlflow

    from pngnn.tracking.runs import log_training
    from pngnn.training.train import TrainResult

    root = tmp_path_factory.mktemp("registry")
    settings = Settings(data_dir=root, db_path=ml100k_db, mlflow_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment(settings, root)
    model = build_most_popular(ml100k_split, TrainConfig())
    run_ids = []
    for recall in (0.10, 0.12):
        with mlflow.start_run(tags={"method": "mostpop", "split": "1"}) as run:
            log_training(TrainResult(model, [], 0, 0.0), "mostpop", ml100k_split, settings,
                         registered_name=model_name("ml-100k", "mostpop"))
            mlflow.log_metric("recall_at_20", recall)
            run_ids.append(run.info.run_id)
    return settings, run_ids


def experiment(settings: Settings, root) -> None:
    """The dataset's experiment with its artifacts under ``root`` (not the working directory)."""
    import mlflow

    from pngnn.tracking.runs import experiment_name, setup

    mlflow.MlflowClient(settings.mlflow_uri).create_experiment(experiment_name("ml-100k"),
                                                              artifact_location=str(root / "artifacts"))
    setup(settings, "ml-100k")


def test_unknown_user_is_one_line_naming_the_id_and_how_to_list(registry):
    settings, _ = registry
    with pytest.raises(PngnnError) as err:
        recommend(settings, user_id=99999, dataset="ml-100k")
    msg = str(err.value)
    assert "\n" not in msg
    assert "unknown user 99999: the model knows 943 user ids, from 1 to 943" in msg
    assert "pngnn-ml-100k-mostpop v" in msg
    assert "SELECT user_id FROM users WHERE dataset = 'ml-100k'" in msg


def test_latest_version_without_alias_then_production_alias(registry):
    settings, run_ids = registry
    latest = resolve(settings, "ml-100k", "mostpop")
    assert latest.alias is None and latest.run_id == run_ids[1]
    first = promote_if_better(settings, "ml-100k", "mostpop", run_ids[0])
    assert first.promoted and first.production_version is None
    assert resolve(settings, "ml-100k", "mostpop").run_id == run_ids[0]
    better = promote_if_better(settings, "ml-100k", "mostpop", run_ids[1])
    assert better.promoted and better.candidate_value > better.production_value
    worse = promote_if_better(settings, "ml-100k", "mostpop", run_ids[0])
    assert not worse.promoted
    prod = resolve(settings, "ml-100k", "mostpop")
    assert prod.alias == PRODUCTION and prod.run_id == run_ids[1]


def test_recommend_masks_train_items_and_prints_titles(registry, ml100k_db):
    settings, _ = registry
    recs = recommend(settings, user_id=1, k=10, dataset="ml-100k")
    assert recs.model.name == "pngnn-ml-100k-mostpop"
    assert recs.items.height == 10
    assert recs.items["score"].is_sorted(descending=True)
    assert recs.items["title"].null_count() == 0
    with Store(ml100k_db, read_only=True) as store:
        train = set(store.query_sql("SELECT item_id FROM splits WHERE dataset = 'ml-100k' AND seed = 1 AND user_id = 1 "
                                "AND part = 'train'")["item_id"].to_list())
    assert recs.n_masked == len(train) > 0
    assert not train & set(recs.items["item_id"].to_list())
    lines = recs.lines()
    assert lines[0].startswith("top 10 for user 1 (ml-100k) from pngnn-ml-100k-mostpop v")
    assert lines[1].startswith("  1. ")


def test_recommend_without_registered_model_says_how_to_train(ml100k_db, tmp_path):
    settings = Settings(data_dir=tmp_path, db_path=ml100k_db, mlflow_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(PngnnError, match="no registered pngnn-ml-100k-\\* model"):
        recommend(settings, user_id=1)


def test_default_method_is_the_best_measured_not_a_fixed_order(tmp_path, ml100k_db, ml100k_split):
    """pngnn recommend without --method serves the registered method with the best recall@20,
    even when the preference order would pick another."""
    import mlflow

    from pngnn.tracking.recommend import pick_method
    from pngnn.tracking.runs import log_training
    from pngnn.training.train import TrainResult

    settings = Settings(data_dir=tmp_path, db_path=ml100k_db, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment(settings, tmp_path)
    model = build_most_popular(ml100k_split, TrainConfig())
    for method, recall in (("pngnn", 0.20), ("lightgcn", 0.25), ("mostpop", 0.10)):
        with mlflow.start_run(tags={"method": method}):
            log_training(TrainResult(model, [], 0, 0.0), method, ml100k_split, settings,
                         registered_name=model_name("ml-100k", method))
            mlflow.log_metric("recall_at_20", recall)
    assert pick_method(settings, "ml-100k") == "lightgcn"


@pytest.mark.parametrize("method", ["pn-ease", "ials"])
def test_registered_closed_form_models_serve_the_scores_they_were_trained_with(tmp_path, ml100k_db, ml100k_split,
                                                                                method):
    """A PN-EASE or iALS model goes through the same registry and recommend path as the GNNs, and the
    reloaded model ranks as the trained one: its scores, best first, nothing better left out."""
    import mlflow

    from pngnn.tracking.runs import log_training
    from pngnn.training.methods import train_method

    settings = Settings(data_dir=tmp_path, db_path=ml100k_db, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment(settings, tmp_path)
    result = train_method(method, ml100k_split, TrainConfig(ials_factors=16), progress=False)
    with mlflow.start_run(tags={"method": method, "split": "1"}):
        log_training(result, method, ml100k_split, settings, registered_name=model_name("ml-100k", method))
        mlflow.log_metric("recall_at_20", 0.3)
    recs = recommend(settings, user_id=1, k=5, dataset="ml-100k")
    assert recs.model.name == f"pngnn-ml-100k-{method}"
    with Store(ml100k_db, read_only=True) as store:
        idx = store.scalar("SELECT user_idx FROM users WHERE dataset = 'ml-100k' AND user_id = 1")
        item_ids = store.query_sql(
            "SELECT item_idx, item_id FROM items WHERE dataset = 'ml-100k' AND item_idx IS NOT NULL")
    scores = result.model.full_sort_predict(torch.tensor([idx]))[0].numpy()
    seen = seen_items(ml100k_split)
    scores[seen.items[seen.users == idx]] = -np.inf
    by_id = dict(zip(item_ids["item_id"].to_list(), item_ids["item_idx"].to_list(), strict=True))
    served = scores[[by_id[i] for i in recs.items["item_id"].to_list()]]
    np.testing.assert_allclose(recs.items["score"].to_numpy(), served, rtol=1e-5, atol=1e-6)
    assert recs.items["score"].is_sorted(descending=True)
    assert served.min() >= np.delete(scores, [by_id[i] for i in recs.items["item_id"].to_list()]).max() - 1e-5
