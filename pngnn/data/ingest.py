"""Ingest a parsed MovieLens dataset, or a user's own interactions, into DuckDB, idempotently and atomically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from pngnn.core.errors import PngnnError
from pngnn.data.datasets import RawDataset
from pngnn.data.store import Store
from pngnn.data.user_data import Interactions


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    checksum: str
    n_ratings: int
    n_users: int
    n_items: int
    skipped: bool  # True when the same data (same checksum) was already there

    def summary(self) -> str:
        """The ingest in one line, as ``pngnn ingest`` and the ingest task print it."""
        return (f"{self.dataset}: {'already up to date' if self.skipped else 'ingested'}: {self.n_ratings} ratings, "
                f"{self.n_users} users, {self.n_items} items")


def ingest(store: Store, raw: RawDataset, force: bool = False) -> IngestResult:
    """Load ratings, items and users for one dataset.

    Re-ingesting data with the same checksum is a no-op (splits and LLM data built on it
    stay valid); different data replaces the old rows in one transaction.
    """
    dupes = raw.ratings.select(pl.struct("user_id", "item_id").is_duplicated()).to_series().arg_true()
    if len(dupes):
        row = raw.ratings.row(int(dupes[0]), named=True)
        raise PngnnError(
            f"duplicate rating for user {row['user_id']} and item {row['item_id']} in {raw.name}; "
            "keep one rating per (user, item) in the ratings file"
        )
    existing = store.query_sql(
        "SELECT checksum, n_ratings, n_users, n_items FROM datasets WHERE dataset = $dataset",
        dataset=raw.name,
    )
    if not force and existing.height and existing["checksum"][0] == raw.checksum:
        r = existing.row(0, named=True)
        return IngestResult(raw.name, raw.checksum, r["n_ratings"], r["n_users"], r["n_items"], True)
    store.register("raw_ratings", raw.ratings)
    store.register("raw_items", raw.items)
    store.register("raw_users", raw.users)
    try:
        with store.transaction():
            store.run_file("ingest_dataset", dataset=raw.name, checksum=raw.checksum)
    finally:
        store.unregister("raw_ratings", "raw_items", "raw_users")
    r = store.query_sql(
        "SELECT n_ratings, n_users, n_items FROM datasets WHERE dataset = $dataset", dataset=raw.name
    ).row(0, named=True)
    return IngestResult(raw.name, raw.checksum, r["n_ratings"], r["n_users"], r["n_items"], False)


def ingest_interactions(store: Store, name: str, data: Interactions, force: bool = False) -> IngestResult:
    """Load a user's interactions (and catalogue) as dataset ``name``: a no-op when the same data
    (same checksum) is there, else the old rows, splits included, replaced in one transaction."""
    existing = store.query_sql("SELECT checksum, n_ratings, n_users, n_items FROM datasets WHERE dataset = $dataset",
                               dataset=name)
    if not force and existing.height and existing["checksum"][0] == data.checksum:
        r = existing.row(0, named=True)
        return IngestResult(name, data.checksum, r["n_ratings"], r["n_users"], r["n_items"], True)
    store.register("raw_interactions", data.frame)
    store.register("raw_catalog", data.catalog)
    try:
        with store.transaction():
            store.run_file("ingest_interactions", dataset=name, checksum=data.checksum, source=data.source,
                           like_threshold=data.like_threshold, implicit=data.implicit)
    finally:
        store.unregister("raw_interactions", "raw_catalog")
    r = store.query_sql("SELECT n_ratings, n_users, n_items FROM datasets WHERE dataset = $dataset",
                        dataset=name).row(0, named=True)
    return IngestResult(name, data.checksum, r["n_ratings"], r["n_users"], r["n_items"], False)


@dataclass(frozen=True)
class AppendResult:
    dataset: str
    checksum: str
    added: int  # rows of pairs the dataset did not hold
    updated: int  # rows of stored pairs with a later time: the latest wins
    present: int  # rows the dataset already held (or held later ones of)
    n_ratings: int

    def summary(self) -> str:
        return (f"{self.dataset}: appended {self.added} new interactions, updated {self.updated}, skipped "
                f"{self.present} already present; {self.n_ratings} in all")


def append_interactions(store: Store, name: str, data: Interactions) -> AppendResult:
    """Add ``data`` to the stored user dataset ``name`` in one transaction; rows it already holds are
    skipped, so appending the same file twice changes nothing the second time. Anything added
    drops the dataset's splits (the next split draws them over all the interactions)."""
    store.register("raw_interactions", data.frame)
    store.register("raw_catalog", data.catalog)
    try:
        counts = store.query_file("append_counts", dataset=name).row(0, named=True)
        old = store.scalar("SELECT checksum FROM datasets WHERE dataset = $dataset", dataset=name)
        checksum = old
        if counts["added"] or counts["updated"]:
            checksum = hashlib.sha256(f"{old}+{data.checksum}".encode()).hexdigest()
            with store.transaction():
                store.run_file("append_interactions", dataset=name, checksum=checksum)
    finally:
        store.unregister("raw_interactions", "raw_catalog")
    n = store.scalar("SELECT n_ratings FROM datasets WHERE dataset = $dataset", dataset=name)
    return AppendResult(name, checksum, counts["added"], counts["updated"], counts["present"], int(n))

