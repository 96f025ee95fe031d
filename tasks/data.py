"""Data tasks: ingest MovieLens into DuckDB and draw the splits.

Both are deterministic and cached (``tasks/cache.py``): a re-run with the same inputs
against the same DuckDB file ends in the ``Cached`` state without touching the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task

from pngnn.errors import PngnnError, TransientError
from pngnn.settings import Settings
from pngnn.steps import ingest_step, split_step
from tasks.cache import INGEST_CACHE, SPLIT_CACHE


def retry_when(other: type[Exception]) -> Callable[[Any, Any, Any], bool]:
    """A task's ``retry_condition_fn``, decided by the error's type: retry a ``TransientError``
    (a failed download, a DuckDB file held by another process) and any ``other`` error; a
    ``PngnnError`` (a bad dataset name or setting, a checksum mismatch, a damaged file,
    invalid answers) fails at once, retrying cannot help, and so does any error besides."""

    def condition(task: Any, task_run: Any, state: Any) -> bool:
        error = state.result(raise_on_failure=False)
        return isinstance(error, TransientError) or (isinstance(error, other) and not isinstance(error, PngnnError))

    return condition


retry_transient = retry_when(OSError)  # ingest: a bug fails at once


@task(name="ingest", task_run_name="ingest-{dataset}", cache_policy=INGEST_CACHE, retries=2,
      retry_delay_seconds=[5, 30], retry_jitter_factor=0.5, retry_condition_fn=retry_transient)
def ingest_task(dataset: str) -> dict:
    """MovieLens -> DuckDB. Idempotent (a no-op when the same data is there); retried on download faults."""
    res = ingest_step(Settings.from_env(), dataset)
    print(res.summary())
    return {"dataset": res.dataset, "checksum": res.checksum, "n_ratings": res.n_ratings,
            "n_users": res.n_users, "n_items": res.n_items, "skipped": res.skipped}


@task(name="split", task_run_name="split-{dataset}-seed{seed}", cache_policy=SPLIT_CACHE)
def split_task(dataset: str, seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.0) -> dict:
    """ratings -> splits(seed) in DuckDB; reused when it already exists."""
    counts = split_step(Settings.from_env(), dataset, seed, test_fraction, valid_fraction)
    print(f"{dataset} seed {seed}: {counts}")
    return counts
