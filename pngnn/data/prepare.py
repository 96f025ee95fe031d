"""A dataset's files into the DuckDB store, and its splits: the first two arrows of the pipeline.

Each call opens the DuckDB file itself (a short-lived connection), so the CLI and the Prefect
tasks can run it in separate processes and nothing passes between steps through ad-hoc files.
"""

from __future__ import annotations

from pngnn.core.config import SplitProtocol, check_dataset
from pngnn.core.settings import Settings
from pngnn.data import datasets
from pngnn.data.ingest import IngestResult, ingest
from pngnn.data.split import create_split
from pngnn.data.store import Store


def ingest_step(settings: Settings, dataset: str, allow_download: bool = True) -> IngestResult:
    """MovieLens files -> DuckDB (ratings, items, users); a no-op when already there."""
    raw = datasets.load(check_dataset(dataset), settings.data_dir, allow_download)
    with Store(settings.db_path) as store:
        return ingest(store, raw)


def split_step(settings: Settings, dataset: str, seed: int, test_fraction: float = 0.2,
               valid_fraction: float = 0.0, protocol: SplitProtocol = "random", last_n: int = 1) -> dict[str, int]:
    """ratings -> splits(seed), drawn by ``protocol``; reused when the same split already exists."""
    with Store(settings.db_path) as store:
        return create_split(store, dataset, seed, test_fraction, valid_fraction, protocol=protocol, last_n=last_n)
