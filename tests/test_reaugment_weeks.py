"""The weekly re-augmentation over three "weeks" of a shop's growing export (issue 29 item 5), run as
a flow in this process against a real Prefect server and a real MLflow tracking server.

Week 1 ingests what the export held then; week 2 points the flow at the grown export: it appends
only the new rows, asks only users never asked or whose train history changed, within the budget,
retrains, registers a new version and decides promotion on the validation part. Week 3, with nothing
new and a budget of 0, trains and registers nothing. Each run publishes the same artifact key, so
Prefect keeps the history. The LLM is ``FaultLLMServer`` (the suite's TEST DOUBLE of an
OpenAI-compatible server) answering by title.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest
from fault_llm_server import FaultLLMServer, Script

from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_user_data_step
from pngnn.data.store import Store
from pngnn.tracking.holdout import HOLDOUT_METRIC
from tests.servers import mlflow_server, prefect_api_in_process
from tests.test_catalogue_augment import by_title, catalogue
from tests.test_user_data import COLUMNS, write

pytestmark = pytest.mark.slow

START = datetime(2024, 1, 1)
YEAR_MIN = 525_600
WEEK1_END = 0.8  # of the year: what the export held at the first run
BUDGET = 15


def export(seed: int = 0) -> pl.DataFrame:
    """40 customers: 20 dormant (all their ratings in the year's first 40%) and 20 active (all year)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(40):
        span = 0.4 if u < 20 else 1.0
        n = int(rng.integers(15, 30)) if u < 20 else int(rng.integers(40, 70))
        skus = rng.choice(90, size=n, replace=False)
        minutes = rng.integers(0, int(span * YEAR_MIN), n)
        rows += [(f"cust-{u:03d}", f"SKU{s:05d}", float(rng.integers(1, 11)), START + timedelta(minutes=int(m)))
                 for s, m in zip(skus, minutes, strict=True)]
    return pl.DataFrame(rows, schema=["customer", "sku", "stars", "when"], orient="row")


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[str, str]]:
    with prefect_api_in_process(tmp_path_factory.mktemp("prefect")) as api, \
            mlflow_server(tmp_path_factory.mktemp("mlflow")) as mlflow_url:
        yield api, mlflow_url


def train_histories(db) -> dict[int, frozenset]:
    with Store(db, read_only=True) as store:
        rows = store.query_sql("SELECT user_id, item_id, rating FROM splits WHERE dataset = 'shop' AND seed = 1 "
                               "AND part = 'train'")
    return {u: frozenset(zip(g["item_id"], g["rating"], strict=True))
            for (u,), g in rows.group_by("user_id")}


def prompt_links(db) -> dict[int, str]:
    """user -> the cache key of the prompt they were last asked (a user asked again gets a new key)."""
    with Store(db, read_only=True) as store:
        rows = store.query_sql("SELECT user_id, key FROM llm_prompts WHERE dataset = 'shop'")
    return dict(zip(rows["user_id"].to_list(), rows["key"].to_list(), strict=True))


def test_three_weeks_ask_only_new_or_changed_users_register_on_change_and_promote_on_validation(
        servers, tmp_path, monkeypatch):
    import mlflow

    from flows.reaugment import reaugment

    api, mlflow_url = servers
    db = tmp_path / "pngnn.duckdb"
    for key, value in {"PNGNN_DB": str(db), "MLFLOW_TRACKING_URI": mlflow_url, "PNGNN_LLM_SCHEMA_MODE": "json_object",
                       "PNGNN_PROFILES_DIR": str(tmp_path / "profiles")}.items():
        monkeypatch.setenv(key, value)
    log = export()
    cut = START + timedelta(minutes=int(WEEK1_END * YEAR_MIN))
    week1, grown = log.filter(pl.col("when") < cut), log
    items = catalogue(tmp_path)
    ingest_user_data_step(Settings(db_path=db, data_dir=tmp_path), "shop", write(week1, tmp_path / "w1.parquet"),
                          COLUMNS, items, "id=sku,title=name,text=description", like_threshold=6)
    source = write(grown, tmp_path / "export.parquet")
    common = {"profile": "quick", "dataset": "shop", "seed": 1, "method": "llm-pngnn", "epochs": 2,
              "split": "temporal"}

    with FaultLLMServer(Script(responder=by_title)) as server:
        llm = {"base_url": server.base_url, "model": "fault-model"}
        first = reaugment(**common, llm=llm, llm_budget=BUDGET)
        week1_prompts = len(server.chat_requests())
        history1, links1 = train_histories(db), prompt_links(db)
        asked1 = set(links1)
        second = reaugment(**common, llm=llm, llm_budget=BUDGET, source=source, columns=COLUMNS)
        week2_prompts = len(server.chat_requests()) - week1_prompts
        history2 = train_histories(db)
        asked2 = {u for u, key in prompt_links(db).items() if links1.get(u) != key}
        third = reaugment(**common, llm=llm, llm_budget=0, source=source, columns=COLUMNS)
        week3_prompts = len(server.chat_requests()) - week1_prompts - week2_prompts

    # week 1: every user is new; the budget bounds the prompts
    aug1 = first["augmentation"]
    assert (aug1["new_users"], aug1["asked_users"], aug1["waiting_users"]) == (40, BUDGET, 40 - BUDGET)
    assert week1_prompts == BUDGET == len(asked1)
    assert first["appended"] is None and first["model"]["retrained"]
    assert first["promotion"]["metric"] == HOLDOUT_METRIC and first["promotion"]["production_version"] is None

    # week 2: only the rows that arrived are appended
    assert (second["appended"]["added"], second["appended"]["present"]) == (grown.height - week1.height, week1.height)
    # who changed, computed from the stored splits: users asked in week 1 whose train part differs now
    changed = {u for u in asked1 if history1.get(u, frozenset()) != history2.get(u, frozenset())}
    unchanged = asked1 - changed
    aug2 = second["augmentation"]
    assert unchanged, "the fixture must leave some asked users untouched (dormant customers)"
    assert aug2["unchanged_users"] == len(unchanged) and aug2["changed_users"] == len(changed)
    assert aug2["new_users"] == 40 - len(asked1)
    assert week2_prompts == aug2["asked_users"] == min(BUDGET, aug2["new_users"] + aug2["changed_users"])
    assert not (asked2 & unchanged), "an unchanged user was asked again"
    assert asked2 <= (set(history2) - asked1) | changed
    # a new version, decided on validation against production v1
    decision = second["promotion"]
    assert second["model"]["retrained"] and second["model"]["version"] == "2"
    assert decision["metric"] == HOLDOUT_METRIC and decision["production_version"] == "1"
    assert decision["promoted"] == (decision["candidate_value"] > decision["production_value"])
    client = mlflow.MlflowClient(mlflow_url)
    run = client.get_run(second["run_id"]).data
    assert run.metrics[HOLDOUT_METRIC] == pytest.approx(decision["candidate_value"])
    assert run.tags["inputs_digest"] == second["model"]["digest"]

    # week 3: nothing new, nobody asked: nothing trained, nothing registered
    assert third["appended"]["added"] == 0 and third["appended"]["updated"] == 0
    assert week3_prompts == 0 and third["augmentation"]["asked_users"] == 0
    assert not third["model"]["retrained"] and third["run_id"] is None and third["promotion"] is None
    versions = client.search_model_versions("name = 'pngnn-shop-llm-pngnn'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert "not retrained" in third["report"]

    # one artifact key, three versions of it: Prefect keeps the week-by-week history
    found = httpx.post(f"{api}/artifacts/filter",
                       json={"artifacts": {"key": {"any_": ["reaugment-shop-llm-pngnn"]}}}, timeout=60).json()
    assert len(found) == 3 and all("users asked" in a["data"] for a in found)
