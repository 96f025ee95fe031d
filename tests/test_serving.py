"""The registered model as MLflow serves it: the pyfunc ranks as the trained torch model does,
rejects bad requests clearly, and a real ``mlflow models serve`` answers what ``pngnn recommend``
prints.

Tiny models (1-2 epochs, small dimensions) on ML-100K; the MLflow store and its artifacts live
in the test's temporary folder, never in the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.core.errors import UserError
from pngnn.core.settings import Settings
from pngnn.models.factors import CsrRows, ScoreFactors
from pngnn.tracking.registry import PRODUCTION, model_name, promote_if_none
from pngnn.tracking.serving import Recommender, UnknownUsers
from pngnn.training.methods import seen_items, train_method
from tests.servers import BIN, QUIET_ENV, free_port, running

TINY = TrainConfig(epochs=1, dim=8, layers=2, ials_factors=8, ials_iterations=2)
METHODS = ("mostpop", "lightgcn", "pngnn", "ease", "pn-ease", "ials")


def tracking_store(root: Path, db: Path) -> Settings:
    """Settings whose MLflow store and experiment artifacts are both under ``root``."""
    import mlflow

    from pngnn.tracking.runs import experiment_name, setup

    settings = Settings(data_dir=root, db_path=db, mlflow_uri=f"sqlite:///{root / 'mlflow.db'}")
    mlflow.MlflowClient(settings.mlflow_uri).create_experiment(experiment_name("ml-100k"),
                                                              artifact_location=str(root / "artifacts"))
    setup(settings, "ml-100k")
    return settings


def log_model(settings: Settings, split, method: str, result, recall: float = 0.1) -> str:
    """One run with the trained model logged and registered the way ``tracked_run`` does it."""
    import mlflow

    from pngnn.tracking.runs import log_training

    with mlflow.start_run(tags={"method": method, "split": str(split.seed)}) as run:
        log_training(result, method, split, settings, registered_name=model_name("ml-100k", method))
        mlflow.log_metric("recall_at_20", recall)
    return run.info.run_id


@pytest.fixture(scope="module")
def logged(tmp_path_factory, ml100k_db, ml100k_split):
    """Every method trained tiny, logged as a pyfunc; (settings, {method: (result, run id)})."""
    torch.set_num_threads(1)
    settings = tracking_store(tmp_path_factory.mktemp("serving"), ml100k_db)
    out = {}
    for method in METHODS:
        result = train_method(method, ml100k_split, TINY, progress=False)
        out[method] = (result, log_model(settings, ml100k_split, method, result))
    return settings, out


def assert_is_torch_top_k(frame: pd.DataFrame, scores: np.ndarray, seen: set[int], index_of: dict[int, int],
                          k: int) -> None:
    """``frame`` (one user's answer) is a top-k of the torch model's full-ranking ``scores`` with
    the ``seen`` items masked: the same scores, best first, nothing better left out. Ties (and
    float rounding between torch and NumPy) may order equal scores either way."""
    items = np.array([index_of[i] for i in frame["item_id"]])
    got = frame["score"].to_numpy()
    unseen = np.setdiff1d(np.arange(len(scores)), sorted(seen))
    assert len(items) == min(k, len(unseen)) and frame["rank"].tolist() == list(range(1, len(items) + 1))
    assert not set(items.tolist()) & seen
    np.testing.assert_allclose(got, scores[items], rtol=1e-5, atol=1e-6)
    assert (np.diff(got) <= 0).all()
    left_out = np.setdiff1d(unseen, items)
    assert got[-1] >= scores[left_out].max() - 1e-5


def load(logged, method: str):
    """The pyfunc of the module's ``method`` run, as ``mlflow.pyfunc.load_model`` gives it."""
    import mlflow

    settings, runs = logged
    mlflow.set_tracking_uri(settings.mlflow_uri)
    return mlflow.pyfunc.load_model(f"runs:/{runs[method][1]}/model")


@pytest.mark.parametrize("method", METHODS)
def test_pyfunc_ranks_as_the_torch_model_with_seen_items_masked(logged, ml100k_split, method):
    result = logged[1][method][0]
    model = load(logged, method)
    served = model.unwrap_python_model().recommender
    user_rows = np.array([0, 5, 942])
    user_ids = served.user_ids[user_rows]
    answer = model.predict(pd.DataFrame({"user_id": user_ids, "k": [5, 20, 10]}))
    torch_scores = result.model.full_sort_predict(torch.from_numpy(user_rows)).numpy()
    seen = seen_items(ml100k_split)
    index_of = {int(i): idx for idx, i in enumerate(served.item_ids)}
    for row, user_id, k, scores in zip(user_rows, user_ids, [5, 20, 10], torch_scores, strict=True):
        mine = answer[answer["user_id"] == user_id]
        assert_is_torch_top_k(mine, scores, set(seen.items[seen.users == row].tolist()), index_of, k)
        assert mine["title"].notna().all()
    assert list(answer.columns) == ["user_id", "rank", "item_id", "title", "score"]


def test_k_is_optional_and_defaults_to_ten(logged):
    model = load(logged, "ease")
    answer = model.predict(pd.DataFrame({"user_id": [1, 2]}))
    assert answer.groupby("user_id").size().to_dict() == {1: 10, 2: 10}


@pytest.mark.parametrize(("frame", "needle"), [
    (pd.DataFrame({"user": [1]}), "missing inputs ['user_id']"),
    (pd.DataFrame({"user_id": [1], "k": [0]}), "k must be a whole number >= 1"),
])
def test_a_bad_request_is_a_clear_invalid_parameter_error(logged, frame, needle):
    from mlflow.exceptions import MlflowException

    model = load(logged, "mostpop")
    with pytest.raises(MlflowException) as err:
        model.predict(frame)
    assert needle in err.value.message
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unknown_users_in_a_batch_get_the_most_rated_items_unless_refused(logged):
    from mlflow.exceptions import MlflowException

    model = load(logged, "ease")
    served = model.unwrap_python_model().recommender
    answer = model.predict(pd.DataFrame({"user_id": [1, 424242, 2]}), params={"k": 3})
    assert answer.groupby("user_id", sort=False).size().to_dict() == {1: 3, 424242: 3, 2: 3}
    counts = np.bincount(served.seen.cols, minlength=served.factors.n_items)  # the training ratings per item
    top = np.argsort(-counts, kind="stable")[:3]
    cold = answer[answer["user_id"] == 424242]
    assert cold["item_id"].tolist() == served.item_ids[top].tolist()
    np.testing.assert_allclose(cold["score"], counts[top] / counts.sum(), rtol=1e-6)
    known = model.predict(pd.DataFrame({"user_id": [1, 2]}), params={"k": 3})
    pd.testing.assert_frame_equal(answer[answer["user_id"] != 424242].reset_index(drop=True), known)
    with pytest.raises(MlflowException) as err:
        model.predict(pd.DataFrame({"user_id": [1, 424242, 999999]}), params={"unknown_users": "error"})
    assert "unknown users 424242, 999999: the model knows 943 user ids, from 1 to 943" in err.value.message
    with pytest.raises(MlflowException) as err:
        model.predict(pd.DataFrame({"user_id": [1]}), params={"unknown_users": "maybe"})
    assert "unknown_users must be one of popular, error, got 'maybe'" in err.value.message


def test_the_registered_model_is_arrays_and_tables_with_its_own_code(logged):
    """No pickled module: NumPy and Parquet artifacts, the model as code, pngnn in code/, pinned
    requirements without torch."""
    import mlflow

    settings, runs = logged
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{runs['lightgcn'][1]}/model",
                                                     tracking_uri=settings.mlflow_uri))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pt", ".pth"))]
    recommender = {f.removeprefix("artifacts/recommender/") for f in files if f.startswith("artifacts/recommender/")}
    assert recommender == {"recommender.json", "item_weights.npy", "user_vectors.npy", "seen_indptr.npy",
                           "seen_items.npy", "users.parquet", "items.parquet"}
    assert {"code/pngnn/tracking/pyfunc.py", "code/pngnn/tracking/serving.py", "pyfunc_model.py",
            "input_example.json"} <= files
    requirements = (local / "requirements.txt").read_text().split()
    assert sorted(r.split("==")[0] for r in requirements) == ["mlflow", "numpy", "pandas", "pyarrow"]


def test_recommender_never_returns_seen_items_and_stops_at_the_unseen_ones():
    factors = ScoreFactors(np.ones((2, 1), np.float32), np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], np.float32))
    seen = CsrRows.from_pairs(np.array([0, 0, 1, 1, 1, 1]), np.array([0, 2, 0, 1, 2, 3]), 2, 5)
    rec = Recommender(factors, seen, np.array([10, 20]), np.arange(100, 105), np.array(list("abcde"), object))
    answer = rec.recommend(np.array([20, 10]), np.array([3, 2]))
    assert answer["user_id"].tolist() == [20, 10, 10]  # user 20 has one unseen item left
    assert answer["item_id"].tolist() == [104, 101, 103] and answer["title"].tolist() == ["e", "b", "d"]
    assert rec.seen_counts(np.array([10, 20])).tolist() == [2, 4]
    with pytest.raises(UnknownUsers, match="unknown user 30: the model knows 2 user ids, from 10 to 20"):
        rec.recommend(np.array([30]), np.array([1]))
    cold = rec.recommend(np.array([30, 10]), np.array([2, 1]), unknown="popular")  # most rated: 0 (2x), 2 (2x)
    assert cold["user_id"].tolist() == [30, 30, 10] and cold["item_id"].tolist() == [100, 102, 101]
    np.testing.assert_allclose(cold["score"].to_numpy()[:2], [2 / 6, 2 / 6], rtol=1e-6)  # their share of ratings
    with pytest.raises(UserError, match="k must be a whole number >= 1"):
        rec.recommend(np.array([10]), np.array([0]))


def test_ties_rank_in_item_order_and_survive_saving(tmp_path):
    """MostPopular ties often; the order of equal scores must not depend on the sort's mood."""
    factors = ScoreFactors(np.zeros((1, 0), np.float32), np.zeros((0, 4), np.float32),
                           np.array([1.0, 3.0, 3.0, 1.0], np.float32))
    seen = CsrRows.from_pairs(np.array([], np.int64), np.array([], np.int64), 1, 4)
    rec = Recommender(factors, seen, np.array([7]), np.array([40, 30, 20, 10]), np.array(list("wxyz"), object))
    loaded = Recommender.load(rec.save(tmp_path / "rec"))
    for r in (rec, loaded):
        assert r.recommend(np.array([7]), np.array([4]))["item_id"].tolist() == [30, 20, 40, 10]


# -- a real `mlflow models serve` process ---------------------------------------------------------


@pytest.fixture(scope="module")
def production(logged, ml100k_split):
    """LightGCN trained a little longer, registered, and production as after a first pipeline
    run (the module's other lightgcn version was never offered for promotion)."""
    settings, _ = logged
    result = train_method("lightgcn", ml100k_split, TrainConfig(epochs=2, dim=16, layers=2), progress=False)
    run_id = log_model(settings, ml100k_split, "lightgcn", result, recall=0.2)
    assert promote_if_none(settings, "ml-100k", "lightgcn", run_id).promoted
    return settings, run_id


def mlflow_client(settings: Settings):
    import mlflow

    return mlflow.MlflowClient(settings.mlflow_uri)


def outside_env(settings: Settings) -> dict[str, str]:
    """A process that knows only the tracking store: no PYTHONPATH to this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **QUIET_ENV, "MLFLOW_TRACKING_URI": settings.mlflow_uri}


@pytest.fixture(scope="module")
def served(production, tmp_path_factory):
    """``mlflow models serve`` on the production alias, run from a folder outside the checkout."""
    settings, _ = production
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    uri = f"models:/{model_name('ml-100k', 'lightgcn')}@{PRODUCTION}"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port), "-w", "1"]
    # MLflow starts its server as `uvicorn` from PATH: this environment's, as in an activated venv.
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_uri, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with running(cmd, f"http://127.0.0.1:{port}/ping", env, root / "serve.log", cwd=root, unset=("PYTHONPATH",)):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_mlflow_models_serve_answers_top_k_with_titles_as_pngnn_recommend(served, production, ml100k_db):
    from pngnn.data.store import Store
    from pngnn.tracking.recommend import recommend

    settings, _ = production
    users = [1, 42]
    reply = httpx.post(f"{served}/invocations", json={"dataframe_records": [{"user_id": u, "k": 10} for u in users]},
                       timeout=60)
    assert reply.status_code == 200, reply.text
    answer = pd.DataFrame(reply.json()["predictions"])
    assert list(answer.columns) == ["user_id", "rank", "item_id", "title", "score"]
    with Store(ml100k_db, read_only=True) as store:
        rated = store.query_sql("SELECT user_id, item_id FROM splits WHERE dataset = 'ml-100k' AND seed = 1 "
                                "AND part <> 'test'")
    for user in users:
        mine = answer[answer["user_id"] == user]
        assert mine["rank"].tolist() == list(range(1, 11))
        assert mine["title"].str.len().gt(0).all()
        assert not set(mine["item_id"]) & set(rated.filter(rated["user_id"] == user)["item_id"].to_list())
        cli = recommend(settings, user_id=user, k=10, dataset="ml-100k", method="lightgcn")
        assert cli.model.alias == PRODUCTION
        assert cli.items["item_id"].to_list() == mine["item_id"].tolist()
        assert cli.items["title"].to_list() == mine["title"].tolist()
        np.testing.assert_allclose(cli.items["score"].to_numpy(), mine["score"].to_numpy(), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("request_body", "needle"), [
    ({"dataframe_records": [{"user": 1}]}, "missing inputs ['user_id']"),
    ({"dataframe_records": [{"user_id": 424242}], "params": {"unknown_users": "error"}}, "unknown user 424242"),
    ({"dataframe_records": [{"user_id": 1.5}]}, "user_id must be a whole number, got [1.5]"),
    ({"dataframe_records": [{"user_id": 1}, {"user_id": "one"}]}, "user_id must be a whole number, got ['one']"),
])
def test_mlflow_models_serve_rejects_a_bad_request_with_400_and_why(served, request_body, needle):
    reply = httpx.post(f"{served}/invocations", json=request_body, timeout=60)
    assert reply.status_code == 400
    assert needle in reply.json()["message"]


@pytest.mark.slow
def test_the_documented_requests_answer_as_documented(served):
    """docs/serving.md's requests, as written there: 5 and 10 rows; k for the whole request; a new
    user among known ones."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", doc)]
    assert len(bodies) >= 3, bodies
    sizes = []
    for body in bodies:
        reply = httpx.post(f"{served}/invocations", json=body, timeout=60)
        assert reply.status_code == 200, (body, reply.text)
        answer = pd.DataFrame(reply.json()["predictions"])
        sizes.append(answer.groupby("user_id", sort=False).size().to_dict())
    assert sizes[0] == {1: 5, 42: 10} and sizes[1] == {1: 5, 42: 5} and sizes[2] == {1: 10, 999999: 10}


@pytest.mark.slow
def test_the_production_model_loads_its_own_pngnn_outside_the_checkout(production, tmp_path):
    """Loaded where this checkout is not on the path, the model imports the pngnn copied into it."""
    settings, _ = production
    probe = ("import mlflow, sys; m = mlflow.pyfunc.load_model(sys.argv[1]); import pngnn; print(pngnn.__file__); "
             "print(len(m.predict(__import__('pandas').DataFrame({'user_id': [1]}))))")
    uri = f"models:/{model_name('ml-100k', 'lightgcn')}@{PRODUCTION}"
    proc = subprocess.run([sys.executable, "-c", probe, uri], env=outside_env(settings), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, count = proc.stdout.split()[-2:]
    assert Path(where).parent.parent.name == "code" and count == "10"
    assert not Path(where).is_relative_to(Path(__file__).resolve().parents[1])


def test_first_registered_version_becomes_production_and_a_second_does_not(tmp_path, ml100k_db, ml100k_split):
    """What the flows' train task does after registering (``promote_if_none``)."""
    settings = tracking_store(tmp_path, ml100k_db)
    result = train_method("mostpop", ml100k_split, TINY, progress=False)
    first = log_model(settings, ml100k_split, "mostpop", result, recall=0.1)
    assert promote_if_none(settings, "ml-100k", "mostpop", first).promoted
    second = log_model(settings, ml100k_split, "mostpop", result, recall=0.3)
    assert promote_if_none(settings, "ml-100k", "mostpop", second) is None
    alias = mlflow_client(settings).get_model_version_by_alias(model_name("ml-100k", "mostpop"), PRODUCTION)
    assert alias.run_id == first
