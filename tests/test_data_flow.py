"""Data flows down (issue 28 item 3): a flow reads each split from DuckDB once and hands it to every
task that trains on it, instead of each training reading it again.

The pipeline runs in this process against a real ``prefect server``; every function that reads a
split from DuckDB is wrapped to count its calls (a spy on the real function, which still runs).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from pngnn.data import split as split_module
from tests.servers import prefect_api_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> Iterator[str]:
    with prefect_api_in_process(tmp_path_factory.mktemp("prefect")) as api:
        yield api


def count_split_reads(monkeypatch) -> list[tuple[str, int]]:
    """Wrap ``load_split`` wherever the library imported it; the list of (dataset, seed) read."""
    reads: list[tuple[str, int]] = []
    real = split_module.load_split

    def counting(store, dataset, seed, *args, **kwargs):
        reads.append((dataset, seed))
        return real(store, dataset, seed, *args, **kwargs)

    holders = [m for name, m in list(sys.modules.items())
               if name.startswith(("pngnn.", "tasks.", "flows.")) and getattr(m, "load_split", None) is real]
    assert holders, "no module holds load_split"
    for module in holders:
        monkeypatch.setattr(module, "load_split", counting)
    return reads


def test_the_pipeline_reads_each_split_once_for_all_its_methods(prefect_api, tmp_path, monkeypatch,
                                                               ml100k_db_copy, data_dir):
    import flows.pipeline  # noqa: F401  (loads every task module before the spy is set)
    from flows.pipeline import pipeline

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reads = count_split_reads(monkeypatch)
    out = pipeline(profile="quick", seeds=[1, 2], methods=["mostpop", "ease", "lightgcn"], epochs=1)
    for method in ("mostpop", "ease", "lightgcn"):  # every method trained and was summarised
        assert any(key.startswith(method) for key in out["summary"]), sorted(out["summary"])[:5]
    # three methods on two splits: two reads, not six
    assert sorted(reads) == [("ml-100k", 1), ("ml-100k", 2)], reads
    # the flow run's table is an artifact under the key that keeps the deployment's history
    import httpx

    found = httpx.post(f"{prefect_api}/artifacts/filter", timeout=60,
                       json={"artifacts": {"key": {"any_": ["pipeline-quick-ml-100k"]}}}).json()
    assert len(found) == 1 and out["table"] in found[0]["data"]


def test_the_pipeline_runs_on_a_users_own_dataset_and_registers_models_in_its_ids(prefect_api, tmp_path,
                                                                                  monkeypatch):
    import mlflow

    from flows.pipeline import pipeline
    from pngnn.core.settings import Settings
    from pngnn.data.prepare import ingest_user_data_step
    from tests.servers import mlflow_server
    from tests.test_user_data import COLUMNS, log_frame, write

    db = tmp_path / "pngnn.duckdb"
    ingest_user_data_step(Settings(db_path=db, data_dir=tmp_path), "shop",
                          write(log_frame(n=3_000), tmp_path / "log.parquet"), COLUMNS, like_threshold=6)
    monkeypatch.setenv("PNGNN_DB", str(db))
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(tmp_path / "profiles"))
    with mlflow_server(tmp_path / "tracking") as uri:  # a real tracking server, its artifacts proxied
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        out = pipeline(profile="quick", dataset="shop", methods=["mostpop", "ease", "pngnn"], epochs=1)
        assert out["dataset"] == "shop"
        for method in ("mostpop", "ease", "pngnn"):
            assert any(key.startswith(method) for key in out["summary"])
        mlflow.set_tracking_uri(uri)
        served = mlflow.pyfunc.load_model("models:/pngnn-shop-ease@production")
        answer = served.predict({"user_id": ["cust-003"], "k": [3]})
    assert answer["user_id"].tolist() == ["cust-003"] * 3 and answer["item_id"].str.startswith("SKU").all()
