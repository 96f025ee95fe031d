"""A dataset's files into the DuckDB store, and its splits: the first two arrows of the pipeline.

Each call opens the DuckDB file itself (a short-lived connection), so the CLI and the Prefect
tasks can run it in separate processes and nothing passes between steps through ad-hoc files.
"""

from __future__ import annotations

import polars as pl

from pngnn.core.config import DATASETS, SplitProtocol, check_dataset
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings
from pngnn.data import datasets
from pngnn.data.ingest import AppendResult, IngestResult, append_interactions, ingest, ingest_interactions
from pngnn.data.split import create_split
from pngnn.data.store import Store
from pngnn.data.user_data import CATALOG_KEYS, RATING_KEYS, ColumnMap, check_name, read_interactions


def ingest_step(settings: Settings, dataset: str, allow_download: bool = True) -> IngestResult:
    """MovieLens files -> DuckDB (ratings, items, users); a no-op when already there. A user's own
    dataset is brought by ``ingest_user_data_step``: here it is only looked up, so that every
    command and flow that starts by ingesting takes its name."""
    if dataset not in DATASETS:
        return stored_dataset(settings, dataset)
    raw = datasets.load(check_dataset(dataset), settings.data_dir, allow_download)
    with Store(settings.db_path) as store:
        return ingest(store, raw)


def stored_dataset(settings: Settings, dataset: str) -> IngestResult:
    """A user's dataset as ingested before; an error naming the command that brings it."""
    check_name(dataset)
    with Store(settings.db_path) as store:
        row = store.query_sql("SELECT checksum, n_ratings, n_users, n_items FROM datasets WHERE dataset = $dataset",
                              dataset=dataset)
    if not row.height:
        raise PngnnError(f"unknown dataset '{dataset}': not a MovieLens name ({', '.join(DATASETS)}) and not in "
                         f"{settings.db_path}; bring it with `pngnn ingest --name {dataset} --ratings FILE`")
    r = row.row(0, named=True)
    return IngestResult(dataset, r["checksum"], r["n_ratings"], r["n_users"], r["n_items"], True)


def ingest_user_data_step(settings: Settings, name: str, ratings: str, columns: str | None = None,
                          items: str | None = None, item_columns: str | None = None,
                          like_threshold: float | None = None, force: bool = False) -> IngestResult:
    """A user's interaction file (and catalogue) -> DuckDB as dataset ``name``: read and checked
    in full before the store is opened, so a bad file writes nothing."""
    if name in DATASETS:
        raise PngnnError(f"'{name}' is a MovieLens name; ingest MovieLens with `pngnn ingest {name}`, or give your "
                         "data another --name")
    check_name(name)
    data = read_interactions(
        ratings, ColumnMap.parse(columns, RATING_KEYS, ("user", "item")), like_threshold, items,
        ColumnMap.parse(item_columns, CATALOG_KEYS, ("id",), flag="--item-columns") if items else None)
    with Store(settings.db_path) as store:
        return ingest_interactions(store, name, data, force=force)


def append_user_data_step(settings: Settings, name: str, ratings: str, columns: str | None = None,
                          items: str | None = None, item_columns: str | None = None) -> AppendResult:
    """New interactions (and catalogue rows) of a user's file -> the stored dataset ``name``; read
    and checked in full before the store is opened."""
    with Store(settings.db_path) as store:
        row = store.query_sql("SELECT like_threshold, implicit FROM datasets WHERE dataset = $dataset", dataset=name)
    if not row.height or row["like_threshold"][0] is None:
        what = "is a MovieLens dataset, which is ingested whole" if row.height else "is not ingested yet"
        raise PngnnError(f"cannot append to '{name}': it {what}; ingest your data first with `pngnn ingest --name "
                         f"{name} --ratings FILE`, then --append new files")
    threshold, implicit = float(row["like_threshold"][0]), bool(row["implicit"][0])
    data = read_interactions(
        ratings, ColumnMap.parse(columns, RATING_KEYS, ("user", "item")), threshold, items,
        ColumnMap.parse(item_columns, CATALOG_KEYS, ("id",), flag="--item-columns") if items else None,
        append_to=(threshold, implicit))
    with Store(settings.db_path) as store:
        return append_interactions(store, name, data)


def dataset_list(settings: Settings) -> pl.DataFrame:
    """What the store holds: name, source, users, items, interactions, threshold, checksum, when."""
    if not settings.db_path.exists():
        return pl.DataFrame()
    with Store(settings.db_path, read_only=True) as store:
        return store.query_sql(
            "SELECT dataset AS name, coalesce(source, 'MovieLens (GroupLens)') AS source, n_users AS users, "
            "n_items AS items, n_ratings AS interactions, "
            "CASE WHEN implicit THEN 'implicit' ELSE CAST(coalesce(like_threshold, 3.5) AS VARCHAR) END AS threshold, "
            "left(checksum, 12) AS checksum, strftime(ingested_at, '%Y-%m-%d %H:%M') AS ingested_at "
            "FROM datasets ORDER BY dataset")


def split_step(settings: Settings, dataset: str, seed: int, test_fraction: float = 0.2,
               valid_fraction: float = 0.0, protocol: SplitProtocol = "random", last_n: int = 1) -> dict[str, int]:
    """ratings -> splits(seed), drawn by ``protocol``; reused when the same split already exists."""
    with Store(settings.db_path) as store:
        return create_split(store, dataset, seed, test_fraction, valid_fraction, protocol=protocol, last_n=last_n)
