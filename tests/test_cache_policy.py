"""The DuckDB-aware cache keys of tasks/cache.py, without a Prefect server.

The key must stay the same across the run that writes the data and the next run (so the
second run can hit the cache) and must change when the DuckDB file is deleted, replaced,
moved, or holds other data (so a step whose output is gone is never skipped).
"""

from __future__ import annotations

import shutil

import pytest

from pngnn.data import datasets
from pngnn.data.ingest import ingest
from pngnn.data.store import Store
from tasks.cache import DuckDBState, expected_checksum


@pytest.fixture
def db_env(tmp_path, monkeypatch):
    path = tmp_path / "db" / "pngnn.duckdb"
    monkeypatch.setenv("PNGNN_DB", str(path))
    return path


def key(checksum: str, **inputs) -> str:
    return DuckDBState(checksum=checksum).compute_key(None, inputs, {})


def test_expected_checksum_matches_what_ingest_stores(ml100k_raw):
    assert expected_checksum("ml-100k") == ml100k_raw.checksum
    assert expected_checksum("no-such-dataset") is None


def test_ingest_key_is_stable_across_the_ingest_that_fills_the_file(db_env, ml100k_raw):
    before = key("expected", dataset="ml-100k")  # what the first run computes (empty file)
    with Store(db_env) as store:
        ingest(store, ml100k_raw)
    after = key("expected", dataset="ml-100k")  # what the second run computes
    assert before == after


def test_deleted_duckdb_file_changes_every_key(db_env, ml100k_raw):
    with Store(db_env) as store:
        ingest(store, ml100k_raw)
    ingest_key, split_key = key("expected", dataset="ml-100k"), key("stored", dataset="ml-100k", seed=1)
    db_env.unlink()
    assert key("expected", dataset="ml-100k") != ingest_key
    assert key("stored", dataset="ml-100k", seed=1) != split_key


def test_replaced_file_with_same_data_is_another_cache(db_env, ml100k_raw, tmp_path):
    with Store(db_env) as store:
        ingest(store, ml100k_raw)
    first = key("stored", dataset="ml-100k")
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(db_env, copy)
    db_env.unlink()
    with Store(db_env) as store:  # a new file, re-ingested: same data, new identity
        ingest(store, ml100k_raw)
    assert key("stored", dataset="ml-100k") != first


def test_split_key_follows_the_stored_dataset_checksum(db_env, make_raw):
    raw_a = make_raw([(1, 1, 5.0), (1, 2, 3.0), (2, 1, 4.0)], name="ml-100k", checksum="a" * 64)
    raw_b = make_raw([(1, 1, 1.0), (1, 2, 3.0), (2, 1, 4.0)], name="ml-100k", checksum="b" * 64)
    with Store(db_env) as store:
        ingest(store, raw_a)
    on_a = key("stored", dataset="ml-100k", seed=1)
    assert key("stored", dataset="ml-100k", seed=1) == on_a
    with Store(db_env) as store:
        ingest(store, raw_b)
    assert key("stored", dataset="ml-100k", seed=1) != on_a


def test_another_duckdb_path_is_another_cache(db_env, ml100k_raw, tmp_path, monkeypatch):
    first = key("expected", dataset="ml-100k")
    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "other.duckdb"))
    assert key("expected", dataset="ml-100k") != first


def test_locked_file_raises_so_prefect_runs_the_task_uncached(db_env):
    """Prefect turns an exception in compute_key into 'no key' (the task runs, nothing is cached);
    returning None instead would let the compound policy cache on the inputs alone."""
    import subprocess
    import sys

    from pngnn.core.errors import PngnnError

    db_env.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db_env)!r}); print('ok', flush=True); "
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(PngnnError, match="cannot open DuckDB file"):
            DuckDBState().compute_key(None, {"dataset": "ml-100k"}, {})
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_sums_file_covers_every_dataset():
    for name in datasets.SHIPPED:
        assert expected_checksum(name) is not None
    # ML-10M+ ship no sums: their checksum is the user's pin, None until there is one.
    assert set(datasets.FILES) - set(datasets.SHIPPED) == {"ml-10m", "ml-20m", "ml-25m"}
