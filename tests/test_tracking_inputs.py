"""Clean comparisons in MLflow (issue 15 item 3): every tracked training names its dataset split
as an MLflow dataset input, and metric names sort in K order. Read back from a real store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pngnn.core.config import TrainConfig
from pngnn.core.constants import KS, METRIC_NAMES
from pngnn.core.settings import Settings
from pngnn.data.datasets import FILES, expected_sums
from pngnn.data.split import create_split, load_split
from pngnn.data.store import Store
from pngnn.tracking.runs import metric_key, metric_name, parent_run, tracked_records, tracked_run, trial_runs

CFG = TrainConfig(epochs=1)


def published_checksum(dataset: str) -> str:
    """The dataset checksum computed here from pngnn/data/SHA256SUMS, independently of the ingest code."""
    sums = expected_sums()
    return hashlib.sha256("".join(sums[f"{dataset}/{f}"] for f in sorted(FILES[dataset].values())).encode()).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory, ml100k_db) -> dict:
    """A private ML-100K DuckDB (splits 1, and 2 with a validation part) and an empty sqlite MLflow store."""
    root = tmp_path_factory.mktemp("inputs")
    db = root / "pngnn.duckdb"
    shutil.copyfile(ml100k_db, db)
    with Store(db) as s:
        create_split(s, "ml-100k", 2, 0.2, 0.1)
        splits = {seed: load_split(s, "ml-100k", seed) for seed in (1, 2)}
    settings = Settings(db_path=db, mlflow_uri=f"sqlite:///{root / 'mlflow.db'}")
    return {"settings": settings, "splits": splits}


def dataset_input(settings: Settings, run_id: str):
    import mlflow

    inputs = mlflow.MlflowClient(settings.mlflow_uri).get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    return inputs[0]


def test_a_tracked_run_logs_its_split_as_its_training_dataset(store):
    settings, split = store["settings"], store["splits"][1]
    run = tracked_run(settings, split, "mostpop", CFG, log_model=False, progress=False)
    got = dataset_input(settings, run.run_id)
    assert got.dataset.name == "ml-100k"
    assert {t.key: t.value for t in got.tags} == {"mlflow.data.context": "training"}
    assert got.dataset.digest.startswith("s1-") and len(got.dataset.digest) <= 36
    assert got.dataset.source_type == "http"
    url = urlsplit(json.loads(got.dataset.source)["url"])
    assert url.geturl().startswith("https://files.grouplens.org/datasets/movielens/ml-100k.zip#")
    fragment = {k: v[0] for k, v in parse_qs(url.fragment).items()}
    assert fragment == {"checksum": published_checksum("ml-100k"), "split_seed": "1", "test_fraction": "0.2",
                        "valid_fraction": "0"}
    profile = json.loads(got.dataset.profile)
    assert profile["train_ratings"] + profile["test_ratings"] == 100_000 and profile["valid_ratings"] == 0
    assert (profile["users"], profile["items"]) == (943, 1682)


def test_runs_on_one_split_share_one_dataset_and_another_split_differs(store):
    """Compare lines up runs by dataset: the same split is the same (name, digest) whatever the
    method; another seed or another validation fraction is another digest."""
    settings, splits = store["settings"], store["splits"]
    first = tracked_run(settings, splits[1], "mostpop", CFG, log_model=False, progress=False)
    other_method = tracked_run(settings, splits[1], "ease", CFG, log_model=False, progress=False)
    other_seed = tracked_run(settings, splits[2], "mostpop", CFG, log_model=False, progress=False)
    digests = [dataset_input(settings, r.run_id).dataset.digest for r in (first, other_method, other_seed)]
    assert digests[0] == digests[1] != digests[2]
    assert digests[2].startswith("s2-")
    source = json.loads(dataset_input(settings, other_seed.run_id).dataset.source)["url"]
    assert "split_seed=2" in source and "valid_fraction=0.1" in source


def test_a_run_on_llm_edges_tags_its_input_with_the_edges(store):
    import numpy as np

    from pngnn.data.split import Interactions

    settings, split = store["settings"], store["splits"][1]
    like = Interactions(np.array([0, 1]), np.array([5, 6]), np.array([5.0, 5.0], np.float32))
    dislike = Interactions(np.array([0]), np.array([7]), np.array([1.0], np.float32))
    augmented = split.with_augmented(like, dislike)
    run = tracked_run(settings, augmented, "mostpop", CFG, log_model=False, progress=False)
    got = dataset_input(settings, run.run_id)
    tags = {t.key: t.value for t in got.tags}
    assert tags["mlflow.data.context"] == "training" and tags["llm_edges"] == "3"
    assert tags["llm_edges_sha256"] == augmented.augmented_digest()["llm_edges_sha256"]
    assert got.dataset.digest == dataset_input(settings, tracked_run(
        settings, split, "mostpop", CFG, log_model=False, progress=False).run_id).dataset.digest  # same split


def test_a_tuning_trial_logs_the_split_it_trains_on(store):
    import mlflow

    settings, split = store["settings"], store["splits"][2]
    with parent_run(settings, "ml-100k", "tune-probe") as parent_id:
        trial = trial_runs(parent_id, split, "ease")
        with trial(0, {"ease_lambda": 100.0}) as log:
            log.metrics({"ndcg@20": 0.1})
            trial_id = mlflow.active_run().info.run_id
    got = dataset_input(settings, trial_id)
    assert got.dataset.name == "ml-100k" and got.dataset.digest.startswith("s2-")
    assert {t.key: t.value for t in got.tags}["mlflow.data.context"] == "training"


def test_metric_names_sort_in_k_order_and_read_back_as_the_metrics(store):
    import mlflow

    settings, split = store["settings"], store["splits"][1]
    run = tracked_run(settings, split, "mostpop", CFG, log_model=False, progress=False)
    logged = mlflow.MlflowClient(settings.mlflow_uri).get_run(run.run_id).data.metrics
    for name in METRIC_NAMES:
        keys = sorted(k for k in logged if k.startswith(f"{name}_at_"))
        assert [metric_name(k) for k in keys] == [f"{name}@{k}" for k in KS]  # text order is K order
        assert keys[0] == f"{name}_at_05"
    assert logged["precision_at_05"] == pytest.approx(run.metrics["precision@5"])


def test_report_reads_padded_and_older_unpadded_names_alike(store):
    """Runs logged before the padding say precision_at_5: ``pngnn report --from mlflow`` reads both."""
    import mlflow

    settings, split = store["settings"], store["splits"][1]
    tracked_run(settings, split, "ease", CFG, log_model=False, progress=False, profile="padded")
    client = mlflow.MlflowClient(settings.mlflow_uri)
    with parent_run(settings, "ml-100k", "old") as _:
        pass
    experiment = client.get_experiment_by_name("pngnn-ml-100k")
    old = client.create_run(experiment.experiment_id, tags={"method": "ease", "split": "1", "profile": "unpadded"})
    for k in KS:
        client.log_metric(old.info.run_id, f"precision_at_{k}", k / 100)
    client.set_terminated(old.info.run_id)
    records = tracked_records(settings, "ml-100k")
    assert records["ease [unpadded]"][0]["metrics"]["precision@5"] == pytest.approx(0.05)
    assert set(records["ease [padded]"][0]["metrics"]) >= {f"precision@{k}" for k in KS}


@pytest.mark.parametrize(("name", "key"), [("precision@5", "precision_at_05"), ("recall@20", "recall_at_20"),
                                           ("ndcg@10", "ndcg_at_10"), ("loss", "loss")])
def test_metric_key_and_metric_name_are_inverse(name, key):
    assert metric_key(name) == key and metric_name(key) == name


def test_the_docs_name_the_padded_metrics():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "tracking.md").read_text()
    assert "precision_at_05" in readme and "precision_at_5 " not in readme
