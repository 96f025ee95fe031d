"""Data tasks: ingest MovieLens into DuckDB and draw the splits."""

from __future__ import annotations

from prefect import task

from pngnn.config import Settings
from pngnn.steps import ingest_step, split_step


@task(name="ingest", task_run_name="ingest-{dataset}", retries=1, retry_delay_seconds=5)
def ingest_task(dataset: str) -> dict:
    """MovieLens -> DuckDB. Idempotent (a no-op when the same data is there); retried once for downloads."""
    res = ingest_step(Settings.from_env(), dataset)
    print(f"{dataset}: {'unchanged' if res.skipped else 'ingested'} ({res.n_ratings} ratings)")
    return {"dataset": res.dataset, "checksum": res.checksum, "n_ratings": res.n_ratings,
            "n_users": res.n_users, "n_items": res.n_items, "skipped": res.skipped}


@task(name="split", task_run_name="split-{dataset}-seed{seed}")
def split_task(dataset: str, seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.0) -> dict:
    """ratings -> splits(seed) in DuckDB; reused when it already exists."""
    counts = split_step(Settings.from_env(), dataset, seed, test_fraction, valid_fraction)
    print(f"{dataset} seed {seed}: {counts}")
    return counts
