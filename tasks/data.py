"""Data tasks: ingest MovieLens into DuckDB, draw the splits, load a split for the tasks after.

Ingest and split are deterministic and cached (``tasks/cache.py``): a re-run with the same
inputs against the same DuckDB file ends in the ``Cached`` state without touching the data. A
flow loads each split once (``load_split_task``) and hands it to every task that trains on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pngnn.augment.edges import EdgeSource, load_split_step, with_llm_edges
from pngnn.core.config import SplitProtocol
from pngnn.core.errors import PngnnError, TransientError
from pngnn.core.settings import Settings
from pngnn.data.prepare import append_user_data_step, ingest_step, split_step
from pngnn.data.split import SplitData
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


@task(name="append", task_run_name="append-{dataset}", cache_policy=NO_CACHE)
def append_task(dataset: str, source: str, columns: str | None = None, items: str | None = None,
                item_columns: str | None = None) -> dict:
    """New interactions of ``source`` (a file, a glob or a DuckDB table) -> the stored dataset; rows
    already ingested are skipped, so pointing it at a growing export adds what arrived since."""
    result = append_user_data_step(Settings.from_env(), dataset, source, columns, items, item_columns)
    print(result.summary())
    return {"added": result.added, "updated": result.updated, "present": result.present,
            "n_ratings": result.n_ratings, "checksum": result.checksum}


@task(name="split", task_run_name="split-{dataset}-seed{seed}", cache_policy=SPLIT_CACHE)
def split_task(dataset: str, seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.0,
               protocol: SplitProtocol = "random", last_n: int = 1) -> dict:
    """ratings -> splits(seed) in DuckDB, drawn by ``protocol``; reused when it already exists."""
    counts = split_step(Settings.from_env(), dataset, seed, test_fraction, valid_fraction, protocol, last_n)
    print(f"{dataset} seed {seed}: {counts}")
    return counts


@task(name="load-split", task_run_name="load-split-{dataset}-seed{seed}", cache_policy=NO_CACHE)
def load_split_task(dataset: str, seed: int) -> SplitData:
    """The stored split, read once for the candidate model, the LLM step and every training."""
    return load_split_step(Settings.from_env(), dataset, seed)


@task(name="add-llm-edges", task_run_name="add-llm-edges-{split.dataset}-seed{split.seed}", cache_policy=NO_CACHE)
def llm_split_task(split: SplitData, tags: dict[str, str]) -> SplitData:
    """The split plus the LLM edges that the runs tagged ``tags`` (model, prompt version) train on."""
    return with_llm_edges(Settings.from_env(), split, EdgeSource.from_tags(tags))
