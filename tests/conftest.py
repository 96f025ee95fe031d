"""Shared fixtures: the read-only MovieLens cache, an ingested ML-100K DuckDB, tiny datasets."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from pngnn.data import datasets
from pngnn.data.datasets import RawDataset
from pngnn.data.ingest import ingest
from pngnn.data.split import SplitData, create_split, load_split
from pngnn.data.store import Store

# The MovieLens download cache: PNGNN_DATA_DIR (set by the Makefile), else ../shared/data
# beside the checkout (this workplace's pre-filled, read-only cache).
SHARED_DATA = Path(os.environ.get("PNGNN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
ML100K_SPLIT_SEED = 1


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tests train on ML-100K-sized graphs: a second torch thread gains little there, and when
    another process holds a core (a shared CI machine), OpenMP threads waiting for each other
    make training many times slower (measured here: 124 s instead of 5 s for 15 epochs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The pre-filled, read-only MovieLens cache (never copied into the repository)."""
    if not (SHARED_DATA / "ml-100k" / "u.data").is_file():
        message = f"MovieLens cache not found at {SHARED_DATA}; set PNGNN_DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never pass by skipping the data tests
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k_raw(data_dir: Path) -> RawDataset:
    return datasets.load("ml-100k", data_dir, allow_download=False)


@pytest.fixture(scope="session")
def ml100k_db(tmp_path_factory: pytest.TempPathFactory, ml100k_raw: RawDataset) -> Path:
    """A DuckDB file holding ML-100K and its split seed 1 (80/20). Treat it as read-only:
    tests that write open a copy (``ml100k_db_copy``)."""
    path = tmp_path_factory.mktemp("ml100k") / "pngnn.duckdb"
    with Store(path) as store:
        ingest(store, ml100k_raw)
        create_split(store, "ml-100k", ML100K_SPLIT_SEED)
    return path


@pytest.fixture
def ml100k_store(ml100k_db: Path) -> Iterator[Store]:
    """A connection to the shared ML-100K file, for tests that only read."""
    store = Store(ml100k_db)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def ml100k_db_copy(ml100k_db: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested ML-100K file that a test may modify."""
    target = tmp_path / "copy.duckdb"
    shutil.copyfile(ml100k_db, target)
    return target


@pytest.fixture(scope="session")
def ml100k_split(ml100k_db: Path) -> SplitData:
    with Store(ml100k_db) as store:
        return load_split(store, "ml-100k", ML100K_SPLIT_SEED)


@pytest.fixture
def make_raw() -> Callable[..., RawDataset]:
    """Factory for hand-built datasets: ``make_raw([(user, item, rating), ...])``.

    Items and users default to exactly those that appear in the ratings; the checksum
    defaults to a digest of the ratings, so different ratings give a different checksum.
    """

    def _make(
        ratings: list[tuple[int, int, float]],
        name: str = "tiny",
        item_ids: list[int] | None = None,
        user_ids: list[int] | None = None,
        checksum: str | None = None,
    ) -> RawDataset:
        item_ids = sorted({i for _, i, _ in ratings}) if item_ids is None else item_ids
        user_ids = sorted({u for u, _, _ in ratings}) if user_ids is None else user_ids
        ratings_df = pl.DataFrame(
            {
                "user_id": [u for u, _, _ in ratings],
                "item_id": [i for _, i, _ in ratings],
                "rating": [r for _, _, r in ratings],
                "ts": list(range(len(ratings))),
            },
            schema={"user_id": pl.Int32, "item_id": pl.Int32, "rating": pl.Float32, "ts": pl.Int64},
        )
        items_df = pl.DataFrame(
            {
                "item_id": item_ids,
                "title": [f"Item {i} (2000)" for i in item_ids],
                "year": [2000] * len(item_ids),
                "genres": [["Drama"]] * len(item_ids),
            },
            schema={"item_id": pl.Int32, "title": pl.String, "year": pl.Int32, "genres": pl.List(pl.String)},
        )
        users_df = pl.DataFrame(
            {
                "user_id": user_ids,
                "gender": ["F"] * len(user_ids),
                "age": [30] * len(user_ids),
                "occupation": ["other"] * len(user_ids),
                "zip": ["00000"] * len(user_ids),
            },
            schema={
                "user_id": pl.Int32,
                "gender": pl.String,
                "age": pl.Int32,
                "occupation": pl.String,
                "zip": pl.String,
            },
        )
        digest = checksum or hashlib.sha256(repr((name, ratings, item_ids, user_ids)).encode()).hexdigest()
        return RawDataset(name=name, ratings=ratings_df, items=items_df, users=users_df, checksum=digest)

    return _make


@pytest.fixture(scope="session")
def ml100k_lightgcn(ml100k_split: SplitData):
    """A LightGCN trained briefly (2 epochs) on the ML-100K split: the candidate source of
    the LLM augmentation tests (their quality is not under test, only their plumbing)."""
    from pngnn.core.config import TrainConfig
    from pngnn.training.train import train_lightgcn

    cfg = TrainConfig(epochs=2, batch_size=2048, n_neg=5, l2=1e-3)
    return train_lightgcn(ml100k_split, cfg, progress=False).model


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the temporary Prefect server a test started in this process (a flow run without
    PREFECT_API_URL starts one) while pytest's streams are still open, after this process's log
    and event workers have sent what they hold to it: left to Prefect's exit hooks, the server
    stops first, and the workers' complaints and its "Stopping temporary server" line go to a
    closed stream as logging tracebacks after the summary."""
    import sys

    module = sys.modules.get("prefect.server.api.server")
    servers = list(module.SubprocessASGIServer._instances.values()) if module is not None else []
    if not any(server.server_process is not None for server in servers):
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=60)
    for server in servers:
        server.stop()
