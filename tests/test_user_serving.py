"""A user's own data served in its own ids (issue 29): the registered model of a dataset with
string ids takes and answers those ids, through ``predict``, ``pngnn recommend`` and a real
``mlflow models serve``."""

from __future__ import annotations

import os

import httpx
import pandas as pd
import pytest

from pngnn.core.config import TrainConfig
from pngnn.core.errors import UserError
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_user_data_step, split_step
from pngnn.data.split import load_split
from pngnn.data.store import Store
from pngnn.tracking.registry import PRODUCTION, model_name, promote_if_none
from tests.servers import BIN, free_port, running
from tests.test_user_data import COLUMNS, catalog_file, log_frame, write


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The shop's log (string ids, a catalogue) ingested, split by time, EASE trained, tracked and
    registered as production."""
    from pngnn.tracking.runs import tracked_run

    root = tmp_path_factory.mktemp("shop")
    settings = Settings(db_path=root / "pngnn.duckdb", data_dir=root, mlflow_uri=f"sqlite:///{root / 'mlflow.db'}")
    ingest_user_data_step(settings, "shop", write(log_frame(n=4_000), root / "log.parquet"), COLUMNS,
                          catalog_file(root), "id=sku,title=name,text=description", like_threshold=6)
    split_step(settings, "shop", 1, protocol="temporal")
    with Store(settings.db_path, read_only=True) as store:
        split = load_split(store, "shop", 1)
    run = tracked_run(settings, split, "ease", TrainConfig(ease_lambda=50.0), profile="custom",
                      registered_name=model_name("shop", "ease"))
    assert promote_if_none(settings, "shop", "ease", run.run_id or "").promoted
    with Store(settings.db_path, read_only=True) as store:
        seen = store.query_sql("SELECT u.external_id AS user, i.external_id AS item FROM splits s JOIN users u USING "
                               "(dataset, user_id) JOIN items i USING (dataset, item_id) WHERE s.dataset = 'shop' AND "
                               "s.seed = 1 AND s.part <> 'test'")
    return settings, seen


def served_model(settings: Settings):
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    return mlflow.pyfunc.load_model(f"models:/{model_name('shop', 'ease')}@{PRODUCTION}")


def test_the_model_takes_and_answers_the_users_own_ids(shop):
    settings, seen = shop
    model = served_model(settings)
    answer = model.predict(pd.DataFrame({"user_id": ["cust-007", "cust-013"], "k": [5, 3]}))
    assert answer["user_id"].tolist() == ["cust-007"] * 5 + ["cust-013"] * 3
    assert answer["item_id"].str.startswith("SKU").all()
    assert answer["title"].str.startswith("Thing ").all()  # the catalogue's titles
    rated = set(seen.filter(seen["user"] == "cust-007")["item"].to_list())
    assert not rated & set(answer[answer["user_id"] == "cust-007"]["item_id"])
    cold = model.predict(pd.DataFrame({"user_id": ["nobody"], "k": [3]}))  # new since training: the most rated
    assert cold["user_id"].tolist() == ["nobody"] * 3 and cold["item_id"].str.startswith("SKU").all()
    with pytest.raises(Exception, match="unknown user nobody"):
        model.predict(pd.DataFrame({"user_id": ["nobody"]}), params={"unknown_users": "error"})


def test_pngnn_recommend_speaks_the_users_ids(shop):
    from pngnn.tracking.recommend import recommend

    settings, _ = shop
    recs = recommend(settings, "cust-007", k=4, dataset="shop")
    assert recs.items.height == 4 and recs.items["item_id"].str.starts_with("SKU").all()
    assert recs.lines()[0].startswith("top 4 for user cust-007 (shop)")
    with pytest.raises(UserError, match="unknown user cust-999"):
        recommend(settings, "cust-999", k=4, dataset="shop")


@pytest.mark.slow
def test_mlflow_models_serve_answers_for_one_of_the_users_ids(shop, tmp_path):
    settings, seen = shop
    port = free_port()
    uri = f"models:/{model_name('shop', 'ease')}@{PRODUCTION}"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port), "-w", "1"]
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_uri, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with running(cmd, f"http://127.0.0.1:{port}/ping", env, tmp_path / "serve.log", cwd=tmp_path,
                 unset=("PYTHONPATH",)):
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations",
                           json={"dataframe_records": [{"user_id": "cust-021", "k": 10}]}, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = pd.DataFrame(reply.json()["predictions"])
    assert answer["user_id"].tolist() == ["cust-021"] * 10 and answer["rank"].tolist() == list(range(1, 11))
    assert not set(seen.filter(seen["user"] == "cust-021")["item"].to_list()) & set(answer["item_id"])
