"""Ingestion into DuckDB: counts, dense indices, idempotence and atomicity."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import polars as pl
import pytest

from pngnn.core.errors import PngnnError, TransientError, UserError
from pngnn.data.ingest import ingest
from pngnn.data.split import create_split
from pngnn.data.sql_files import sql_statements
from pngnn.data.store import Store

TABLES = ("datasets", "ratings", "items", "users", "splits", "split_meta")


def snapshot(store: Store) -> dict[str, pl.DataFrame]:
    """Every table's full contents in a canonical row order."""
    out = {}
    for table in TABLES:
        frame = store.query_sql(f"SELECT * FROM {table}")
        out[table] = frame.sort(frame.columns, nulls_last=True)
    return out


def assert_same(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    for table in TABLES:
        assert after[table].equals(before[table]), f"table {table} changed"


def count(store: Store, table: str, dataset: str = "ml-100k") -> int:
    return store.scalar(f"SELECT count(*) FROM {table} WHERE dataset = $d", d=dataset)


def test_ingest_counts(ml100k_store):
    assert count(ml100k_store, "ratings") == 100_000
    assert count(ml100k_store, "items") == 1682
    assert count(ml100k_store, "users") == 943
    row = ml100k_store.query_sql("SELECT * FROM datasets WHERE dataset = 'ml-100k'").row(0, named=True)
    assert (row["n_ratings"], row["n_users"], row["n_items"]) == (100_000, 943, 1682)
    # one rating per (user, item)
    assert ml100k_store.scalar("SELECT count(DISTINCT (user_id, item_id)) FROM ratings") == 100_000


def test_ingest_keeps_titles_and_genres(ml100k_store):
    row = ml100k_store.query_sql("SELECT title, year, genres FROM items WHERE item_id = 543").row(0, named=True)
    assert row == {"title": "Mis\u00e9rables, Les (1995)", "year": 1995, "genres": ["Drama", "Musical"]}


def test_dense_indices(ml100k_store):
    for table, key, idx, n in (("items", "item_id", "item_idx", 1682), ("users", "user_id", "user_idx", 943)):
        frame = ml100k_store.query_sql(f"SELECT {key}, {idx} FROM {table} WHERE dataset = 'ml-100k' ORDER BY {key}")
        # dense 0..n-1, each index once, in id order
        assert frame[idx].null_count() == 0
        np.testing.assert_array_equal(frame[idx].to_numpy(), np.arange(n))


def test_dense_indices_skip_unrated_and_keep_unlisted(tmp_path, make_raw):
    # items 10 (listed, never rated), 20, 30 (listed and rated), 40 (rated, not listed)
    raw = make_raw([(5, 30, 4.0), (7, 20, 2.0), (7, 40, 5.0)], item_ids=[10, 20, 30], user_ids=[5, 6, 7])
    with Store(tmp_path / "t.duckdb") as store:
        result = ingest(store, raw)
        assert (result.n_ratings, result.n_users, result.n_items) == (3, 2, 3)
        items = dict(store.query_sql("SELECT item_id, item_idx FROM items WHERE dataset = 'tiny'").iter_rows())
        users = dict(store.query_sql("SELECT user_id, user_idx FROM users WHERE dataset = 'tiny'").iter_rows())
    # rated items 20, 30, 40 -> 0, 1, 2 in id order; 10 has no index
    assert items == {10: None, 20: 0, 30: 1, 40: 2}
    # rated users 5, 7 -> 0, 1; user 6 rated nothing
    assert users == {5: 0, 6: None, 7: 1}


def test_second_ingest_is_skipped(ml100k_db_copy, ml100k_raw):
    with Store(ml100k_db_copy) as store:
        before = snapshot(store)
        result = ingest(store, ml100k_raw)
        assert result.skipped is True
        assert (result.n_ratings, result.n_users, result.n_items) == (100_000, 943, 1682)
        assert_same(before, snapshot(store))  # the split of seed 1 survives too


def test_forced_reingest_replaces_without_duplicates(ml100k_db_copy, ml100k_raw):
    with Store(ml100k_db_copy) as store:
        before = snapshot(store)
        result = ingest(store, ml100k_raw, force=True)
        assert result.skipped is False
        assert (result.n_ratings, result.n_users, result.n_items) == (100_000, 943, 1682)
        after = snapshot(store)
        for table in ("ratings", "items", "users"):
            assert after[table].equals(before[table]), table
        assert store.scalar("SELECT count(DISTINCT (user_id, item_id)) FROM ratings") == 100_000
        # splits index the replaced ratings and are dropped with them
        assert count(store, "splits") == 0
        assert count(store, "split_meta") == 0


def test_two_datasets_side_by_side(tmp_path, make_raw):
    with Store(tmp_path / "t.duckdb") as store:
        ingest(store, make_raw([(1, 1, 5.0), (1, 2, 3.0)], name="a"))
        ingest(store, make_raw([(1, 1, 4.0)], name="b"))
        ingest(store, make_raw([(2, 2, 1.0), (2, 3, 2.0), (3, 3, 5.0)], name="a"))  # new data for a
        assert count(store, "ratings", "a") == 3
        assert count(store, "ratings", "b") == 1
        assert count(store, "items", "b") == 1


def test_duplicate_ratings_rejected_and_nothing_written(ml100k_db_copy, ml100k_raw):
    dup = ml100k_raw.ratings.head(1)
    raw = type(ml100k_raw)(
        name=ml100k_raw.name,
        ratings=pl.concat([ml100k_raw.ratings, dup]),
        items=ml100k_raw.items,
        users=ml100k_raw.users,
        checksum="0" * 64,
    )
    u, i = dup["user_id"][0], dup["item_id"][0]
    with Store(ml100k_db_copy) as store:
        before = snapshot(store)
        with pytest.raises(PngnnError) as exc:
            ingest(store, raw)
        msg = str(exc.value)
        assert f"user {u}" in msg and f"item {i}" in msg and "\n" not in msg
        assert_same(before, snapshot(store))


def test_failure_after_all_statements_rolls_back(ml100k_db_copy, ml100k_raw, make_raw, monkeypatch):
    """Every statement of the ingest runs (deletes and inserts), then the step fails before
    commit: the file must hold exactly the old data, on disk too."""
    other = make_raw([(1, 1, 5.0)], name="ml-100k")  # different data, different checksum
    with Store(ml100k_db_copy) as store:
        before = snapshot(store)
        real_run = store.run_file

        def run_then_fail(name, **params):
            real_run(name, **params)
            if name == "ingest_dataset":
                # inside the transaction the new data is visible...
                assert count(store, "ratings") == 1
                raise RuntimeError("crash after the last statement")

        monkeypatch.setattr(store, "run_file", run_then_fail)
        with pytest.raises(RuntimeError, match="crash"):
            ingest(store, other)
        assert_same(before, snapshot(store))
        monkeypatch.undo()
        # the store is still usable: the raw_* views were unregistered, a new ingest works
        assert ingest(store, other).n_ratings == 1
    with Store(ml100k_db_copy) as store:
        assert count(store, "ratings") == 1


def test_sql_error_midway_rolls_back(ml100k_db_copy, ml100k_raw, make_raw):
    """A real SQL failure between statements (a year that is not an INTEGER, after the
    deletes and the ratings insert have run) leaves the file as it was."""
    good = make_raw([(1, 1, 5.0), (2, 1, 3.0)], name="ml-100k")
    bad_items = good.items.with_columns(pl.lit("not a year").alias("year"))
    bad = type(good)(name=good.name, ratings=good.ratings, items=bad_items, users=good.users, checksum=good.checksum)
    with Store(ml100k_db_copy) as store:
        before = snapshot(store)
        with pytest.raises(duckdb.ConversionException):
            ingest(store, bad)
        assert_same(before, snapshot(store))
    with Store(ml100k_db_copy) as store:  # reopened from disk
        assert_same(before, snapshot(store))


def test_statement_order_makes_the_midway_failure_real():
    """Guard for the test above: the items insert comes after the deletes and the ratings insert."""
    stmts = sql_statements("ingest_dataset")
    first_items_insert = next(k for k, s in enumerate(stmts) if s.startswith("INSERT INTO items"))
    assert any(s.startswith("DELETE FROM ratings") for s in stmts[:first_items_insert])
    assert any(s.startswith("INSERT INTO ratings") for s in stmts[:first_items_insert])


def test_split_then_reingest_same_data_keeps_split(tmp_path, make_raw):
    ratings = [(u, i, float(1 + (u + i) % 5)) for u in range(10) for i in range(10)]
    raw = make_raw(ratings)
    with Store(tmp_path / "t.duckdb") as store:
        ingest(store, raw)
        create_split(store, "tiny", 3)
        assert ingest(store, raw).skipped
        assert count(store, "splits", "tiny") == 100


def test_store_waits_for_a_short_lock_and_names_a_long_one(tmp_path):
    """Another process writing for a moment (an augmentation's answer) only delays opening;
    one that keeps the file gets the one-line error after the wait."""
    import subprocess
    import sys
    import time


    path = tmp_path / "shared.duckdb"
    Store(path).close()
    hold = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(float(sys.argv[2])); c.close()")
    short = subprocess.Popen([sys.executable, "-c", hold, str(path), "1.0"], stdout=subprocess.PIPE, text=True)
    assert short.stdout.readline().strip() == "ok"
    t0 = time.monotonic()
    with Store(path, wait_s=30):
        pass
    assert time.monotonic() - t0 < 25
    short.wait()
    long = subprocess.Popen([sys.executable, "-c", hold, str(path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert long.stdout.readline().strip() == "ok"
        with pytest.raises(TransientError, match=r"cannot open DuckDB file .*PNGNN_DB") as info:
            Store(path, wait_s=0.5)
        assert "close the other process" in info.value.fix
    finally:
        long.kill()


@pytest.mark.parametrize("keep", [0, 100, 5000])
def test_a_damaged_file_is_named_damaged_not_locked(tmp_path, keep):
    """A truncated (or empty) DuckDB file fails at once with its own one-line message and fix;
    the lock wording ("close the other process") would send the user after a process that does
    not exist, and waiting for the lock would only delay the error."""
    import time

    good = tmp_path / "good.duckdb"
    with Store(good) as store:
        store.run_sql("CREATE TABLE filler AS SELECT range AS x FROM range(100000)")
    data = good.read_bytes()
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(data[:keep])
    t0 = time.monotonic()
    with pytest.raises(UserError) as info:
        Store(bad, wait_s=30)
    assert time.monotonic() - t0 < 10  # not retried as if it were locked
    msg = str(info.value)
    assert "\n" not in msg and str(bad) in msg and "damaged or truncated" in msg
    assert "close the other process" not in msg
    assert "move the file away" in info.value.fix and "pngnn ingest" in info.value.fix


def test_a_file_damaged_past_its_catalog_is_named_when_read(tmp_path):
    """Truncated in its data blocks, a file opens (the catalog is intact) and fails only when
    the lost blocks are read: the query gets the same message, not a raw DuckDB IO error.
    Where the data blocks lie depends on DuckDB's layout, so cut at several points: each cut
    either fails to open, fails when read, or lost only free space, and never gives a raw error."""
    good = tmp_path / "good.duckdb"
    with Store(good) as store:
        store.run_sql("CREATE TABLE filler AS SELECT range AS x FROM range(100000)")
    data = good.read_bytes()
    outcomes = []
    for tenth in range(1, 10):
        bad = tmp_path / f"cut{tenth}.duckdb"
        bad.write_bytes(data[: len(data) * tenth // 10])
        try:
            store = Store(bad)
        except UserError as exc:
            assert "damaged or truncated" in str(exc)
            outcomes.append("open")
            continue
        try:
            assert store.scalar("SELECT sum(x) FROM filler") == 4_999_950_000
            outcomes.append("intact")
        except UserError as exc:
            assert "damaged or truncated" in str(exc) and "move the file away" in exc.fix
            outcomes.append("read")
        finally:
            store.close()
    assert "read" in outcomes, outcomes


def test_a_file_that_is_no_duckdb_file_is_named_damaged(tmp_path):
    bad = tmp_path / "notes.duckdb"
    bad.write_text("not a database\n" * 100)
    with pytest.raises(UserError, match=r"damaged or truncated.*move the file away"):
        Store(bad)


# The file layout of DuckDB's storage: three 4 KiB headers, then blocks of 256 KiB (a checksum first).
HEADERS, BLOCK = 3 * 4096, 262_144


def damage_a_block_of(db, table: str, column: str) -> None:
    """Overwrite the middle of a block that holds ``table.column``'s data (its checksum no longer matches)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        blocks = [b for (b,) in con.sql(f"SELECT DISTINCT block_id FROM pragma_storage_info('{table}') WHERE "
                                        f"block_id >= 0 AND column_name = '{column}' ORDER BY block_id").fetchall()]
    finally:
        con.close()
    assert blocks, f"{table} has no persistent block"
    with open(db, "r+b") as f:
        f.seek(HEADERS + blocks[0] * BLOCK + BLOCK // 2)
        f.write(np.random.default_rng(0).bytes(4096))


def test_a_damaged_block_is_one_line_when_read_and_pngnn_doctor_finds_it(ml100k_db_copy, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    healthy = CliRunner().invoke(app, ["doctor"])
    assert healthy.exit_code == 0 and "tables read end to end" in healthy.output and "no damage" in healthy.output
    damage_a_block_of(ml100k_db_copy, "ratings", "rating")
    damaged = r"is damaged or truncated \(DuckDB says: Corrupt database file"
    # the file opens fine (the damage is in a data block); reading the block is the one line
    with Store(ml100k_db_copy, read_only=True) as store, pytest.raises(UserError, match=damaged) as info:
        store.query_sql("SELECT sum(rating) FROM ratings")
    assert "\n" not in str(info.value) and "run `pngnn ingest` again" in str(info.value)
    found = CliRunner().invoke(app, ["doctor"])
    assert found.exit_code == 2 and "is damaged or truncated" in found.output and "Traceback" not in found.output


def test_a_full_disk_is_named_as_such():
    from pngnn.data.store import disk_full_error

    full = disk_full_error("x.duckdb", duckdb.Error('TransactionContext Error: Failed to commit: Could not write file '
                                                    '"/data/x.duckdb.wal": No space left on device'))
    assert isinstance(full, OSError) and full.errno == 28 and full.filename == "/data/x.duckdb.wal"
    assert disk_full_error("x.duckdb", duckdb.Error("Catalog Error: Table with name nope does not exist")) is None


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs (a full disk soon), where this machine lets the tests mount one."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_ingest_on_a_full_disk_is_one_line_and_leaves_no_dataset(tiny_disk, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    db = tiny_disk / "pngnn.duckdb"
    monkeypatch.setenv("PNGNN_DB", str(db))
    out = CliRunner().invoke(app, ["ingest", "ml-100k"])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: no space left on the device of {db}"), out.output
    assert re.search(r"\(now \d+\.\d MB free of 2 MB\)", lines[0]), lines[0]
    if db.exists():  # the transaction was rolled back: no half dataset
        con = duckdb.connect(str(db), read_only=True)
        try:
            assert con.sql("SELECT count(*) FROM ratings").fetchall() == [(0,)]
        finally:
            con.close()
