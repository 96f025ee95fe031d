"""A user's own interactions (issue 29 item 1): every format DuckDB reads, string ids, times, a
catalogue, implicit data, and every bad input as one line with nothing written to the store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings
from pngnn.data.prepare import dataset_list, ingest_user_data_step, stored_dataset
from pngnn.data.split import load_split
from pngnn.data.store import Store

START = datetime(2024, 1, 1)
COLUMNS = "user=customer,item=sku,rating=stars,time=when"


def log_frame(n: int = 600, seed: int = 0) -> pl.DataFrame:
    """A shop's log: string user and item ids, ratings 1-10, times over a year (unique pairs)."""
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({
        "customer": [f"cust-{u:03d}" for u in rng.integers(0, 40, n)],
        "sku": [f"SKU{i:05d}" for i in rng.integers(0, 90, n)],
        "stars": rng.integers(1, 11, n).astype(np.float64),
        "when": [START + timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n)],
    })
    return frame.unique(["customer", "sku"], keep="first", maintain_order=True)


def write(frame: pl.DataFrame, path) -> str:
    suffix = path.suffix
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".tsv":
        frame.write_csv(path, separator="\t")
    elif suffix == ".jsonl":
        frame.write_ndjson(path)
    return str(path)


def catalog_file(tmp_path) -> str:
    items = pl.DataFrame({"sku": [f"SKU{i:05d}" for i in range(95)], "name": [f"Thing {i}" for i in range(95)],
                          "description": [f"A thing, number {i}" for i in range(95)]})
    return write(items, tmp_path / "catalog.csv")


def settings(tmp_path) -> Settings:
    return Settings(db_path=tmp_path / "db" / "pngnn.duckdb", data_dir=tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_every_format_ingests_the_same_interactions_with_their_own_ids(tmp_path, suffix):
    frame = log_frame()
    conf = settings(tmp_path)
    result = ingest_user_data_step(conf, "shop", write(frame, tmp_path / f"log{suffix}"), COLUMNS,
                                   catalog_file(tmp_path), "id=sku,title=name,text=description", like_threshold=6)
    assert (result.n_ratings, result.n_users, result.n_items) == (
        frame.height, frame["customer"].n_unique(), frame["sku"].n_unique())
    with Store(conf.db_path, read_only=True) as store:
        stored = store.query_sql(
            "SELECT u.external_id AS customer, i.external_id AS sku, r.rating AS stars, r.ts FROM ratings r "
            "JOIN users u USING (dataset, user_id) JOIN items i USING (dataset, item_id) WHERE r.dataset = 'shop'")
        titles = dict(store.query_sql("SELECT external_id, title FROM items WHERE dataset = 'shop'").iter_rows())
        meta = store.query_sql("SELECT like_threshold, implicit FROM datasets WHERE dataset = 'shop'").row(0)
    expected = frame.with_columns(ts=pl.col("when").dt.epoch("s")).select("customer", "sku", "stars", "ts")
    assert stored.sort("customer", "sku").with_columns(pl.col("stars").cast(pl.Float64)).equals(
        expected.sort("customer", "sku"))
    assert titles["SKU00007"] == "Thing 7" and meta == (6.0, False)
    assert len(titles) == 95  # the catalogue's items that no one rated stay in the catalogue


def test_the_same_file_again_is_a_no_op_and_the_checksum_is_the_files(tmp_path):
    import hashlib

    path = write(log_frame(), tmp_path / "log.parquet")
    conf = settings(tmp_path)
    first = ingest_user_data_step(conf, "shop", path, COLUMNS, like_threshold=6)
    again = ingest_user_data_step(conf, "shop", path, COLUMNS, like_threshold=6)
    assert not first.skipped and again.skipped and again.checksum == first.checksum
    file_sum = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert first.checksum == hashlib.sha256(file_sum.encode()).hexdigest()
    assert stored_dataset(conf, "shop").checksum == first.checksum


def test_duplicate_pairs_keep_the_latest_by_time_and_are_counted(tmp_path, caplog):
    rows = pl.DataFrame({"customer": ["a", "a", "a", "b"], "sku": ["x", "x", "y", "x"], "stars": [1.0, 9.0, 5.0, 2.0],
                         "when": [START + timedelta(days=d) for d in (5, 1, 2, 3)]})
    conf = settings(tmp_path)
    with caplog.at_level("WARNING"):
        result = ingest_user_data_step(conf, "shop", write(rows, tmp_path / "log.csv"), COLUMNS, like_threshold=4)
    assert result.n_ratings == 3
    assert "1 duplicate (user, item) rows; kept the latest" in caplog.text
    with Store(conf.db_path, read_only=True) as store:
        kept = store.scalar("SELECT r.rating FROM ratings r JOIN users u USING (dataset, user_id) JOIN items i USING "
                            "(dataset, item_id) WHERE u.external_id = 'a' AND i.external_id = 'x'")
    assert kept == 1.0  # day 5 beats day 1 whatever the file order


def test_implicit_data_is_all_likes_and_the_dislike_methods_refuse_it(tmp_path, monkeypatch):
    from pngnn.core.config import TrainConfig
    from pngnn.data.prepare import split_step
    from pngnn.training.methods import train_method

    frame = log_frame().select("customer", "sku", "when")
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "clicks", write(frame, tmp_path / "clicks.parquet"), "user=customer,item=sku,time=when")
    split_step(conf, "clicks", 1)
    with Store(conf.db_path, read_only=True) as store:
        split = load_split(store, "clicks", 1)
    assert split.implicit and set(np.unique(split.train.ratings)) == {1.0}
    assert len(split.train.positive(split.like_threshold)) == len(split.train)  # every interaction a like
    cfg = TrainConfig(epochs=1, dim=8, batch_size=512, n_neg=2)
    for method in ("pngnn", "pn-ease", "weighted-ease"):
        with pytest.raises(PngnnError, match=f"{method} learns from disliked ratings and clicks is implicit") as info:
            train_method(method, split, cfg)
        assert "\n" not in str(info.value)
    assert train_method("ease", split, cfg).model is not None


def test_a_duckdb_table_is_a_source(tmp_path):
    source = tmp_path / "warehouse.duckdb"
    frame = log_frame()
    with duckdb.connect(str(source)) as con:
        con.register("f", frame)
        con.execute("CREATE TABLE events AS SELECT * FROM f")
    conf = settings(tmp_path)
    result = ingest_user_data_step(conf, "shop", f"{source}:events", COLUMNS, like_threshold=6)
    assert result.n_ratings == frame.height


def test_datasets_lists_what_is_ingested(tmp_path):
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "shop", write(log_frame(), tmp_path / "log.parquet"), COLUMNS, like_threshold=6)
    ingest_user_data_step(conf, "clicks", write(log_frame().drop("stars"), tmp_path / "c.parquet"),
                          "user=customer,item=sku,time=when")
    rows = {r["name"]: r for r in dataset_list(conf).iter_rows(named=True)}
    assert set(rows) == {"shop", "clicks"}
    assert rows["shop"]["threshold"] == "6.0" and rows["clicks"]["threshold"] == "implicit"
    assert rows["shop"]["source"].endswith("log.parquet") and len(rows["shop"]["checksum"]) == 12


# -- bad input: one line naming the fix, nothing written ---------------------------------------------


def bad_cases(tmp_path):
    good = log_frame()
    nan = good.with_columns(stars=pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("stars")))
    inf = good.with_columns(stars=pl.when(pl.int_range(pl.len()) == 4).then(float("inf")).otherwise(pl.col("stars")))
    words = good.with_columns(stars=pl.col("stars").cast(pl.String)).with_columns(
        stars=pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("five")).otherwise(pl.col("stars")))
    times = good.with_columns(when=pl.col("when").dt.strftime("%Y-%m-%d %H:%M:%S")).with_columns(
        when=pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("last tuesday")).otherwise(pl.col("when")))
    (tmp_path / "empty.csv").write_text("customer,sku,stars,when\n")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    (tmp_path / "log.xlsx").write_bytes(b"not read")
    return {
        "missing column": (write(good, tmp_path / "g.parquet"), "user=client,item=sku,rating=stars", 6,
                           r"column 'client' \(mapped to user\) is not in .* its columns are \['customer', 'sku'"),
        "NaN rating": (write(nan, tmp_path / "nan.parquet"), COLUMNS, 6,
                       "ratings in column 'stars' are NaN or infinite"),
        "infinite rating": (write(inf, tmp_path / "inf.parquet"), COLUMNS, 6, "NaN or infinite"),
        "word rating": (write(words, tmp_path / "words.csv"), COLUMNS, 6,
                        r"1 ratings in column 'stars' are missing or not numbers \(first: 'five'"),
        "bad time": (write(times, tmp_path / "times.csv"), COLUMNS, 6,
                     r"1 values of time column 'when' do not parse as a time \(first: 'last tuesday'"),
        "empty file": (str(tmp_path / "empty.csv"), COLUMNS, 6, "holds no rows"),
        "unreadable": (str(tmp_path / "broken.parquet"), COLUMNS, 6, "cannot read .*broken.parquet"),
        "unsupported": (str(tmp_path / "log.xlsx"), COLUMNS, 6, "unsupported format '.xlsx'"),
        "threshold above": (write(good, tmp_path / "g2.parquet"), COLUMNS, 10,
                            r"--like-threshold 10 is outside .* \(1 to 10\): no rating would be a like"),
        "no threshold off scale": (write(good, tmp_path / "g3.parquet"), COLUMNS, None,
                                   "not MovieLens' 0.5-5 scale; say which are likes with --like-threshold"),
        "bad mapping": (write(good, tmp_path / "g4.parquet"), "user customer", 6, "expected KEY=COLUMN"),
    }


@pytest.mark.parametrize("case", ["missing column", "NaN rating", "infinite rating", "word rating", "bad time",
                                  "empty file", "unreadable", "unsupported", "threshold above",
                                  "no threshold off scale", "bad mapping"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    path, columns, threshold, message = bad_cases(tmp_path)[case]
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "keep", write(log_frame(seed=9), tmp_path / "keep.parquet"), COLUMNS, like_threshold=6)
    with Store(conf.db_path, read_only=True) as store:
        before = store.query_sql("SELECT dataset, count(*) AS n FROM ratings GROUP BY dataset").sort("dataset")
    with pytest.raises(PngnnError, match=message) as info:
        ingest_user_data_step(conf, "shop", path, columns, like_threshold=threshold)
    assert "\n" not in str(info.value)
    with Store(conf.db_path, read_only=True) as store:
        after = store.query_sql("SELECT dataset, count(*) AS n FROM ratings GROUP BY dataset").sort("dataset")
        assert store.scalar("SELECT count(*) FROM datasets WHERE dataset = 'shop'") == 0
    assert after.equals(before)


def test_catalogue_gaps_are_counted_and_warned(tmp_path, caplog):
    frame = log_frame()
    rated = frame["sku"].unique().sort()
    catalog = pl.DataFrame({"sku": [*rated[5:].to_list(), "SKU-NEVER-1", "SKU-NEVER-2"]})
    conf = settings(tmp_path)
    with caplog.at_level("WARNING"):
        ingest_user_data_step(conf, "shop", write(frame, tmp_path / "log.parquet"), COLUMNS,
                              write(catalog, tmp_path / "cat.csv"), "id=sku", like_threshold=6)
    assert "5 rated items are not in the catalogue" in caplog.text
    assert "2 catalogue items have no interaction" in caplog.text


def test_a_movielens_name_or_a_bad_name_is_refused(tmp_path):
    path = write(log_frame(), tmp_path / "log.parquet")
    with pytest.raises(PngnnError, match="'ml-1m' is a MovieLens name"):
        ingest_user_data_step(settings(tmp_path), "ml-1m", path, COLUMNS, like_threshold=6)
    with pytest.raises(PngnnError, match="dataset name 'My Shop!' is not allowed"):
        ingest_user_data_step(settings(tmp_path), "My Shop!", path, COLUMNS, like_threshold=6)


def test_from_the_command_line_ingest_list_and_train_with_the_datasets_threshold(tmp_path, monkeypatch):
    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "pngnn.duckdb"))
    path = write(log_frame(n=3_000), tmp_path / "log.parquet")
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "--name", "shop", "--ratings", path, "--columns", COLUMNS,
                              "--like-threshold", "6"])
    assert out.exit_code == 0, out.output
    assert "shop: ingested:" in out.output
    listed = runner.invoke(app, ["datasets"])
    assert listed.exit_code == 0 and "| shop |" in listed.output
    train = runner.invoke(app, ["train", "--dataset", "shop", "--method", "ease", "--seed", "1", "--split", "temporal",
                                "--results-dir", str(tmp_path / "results")])
    assert train.exit_code == 0, train.output
    record = json.loads((tmp_path / "results" / "shop" / "ease-temporal" / "seed1.json").read_text())
    assert record["config"]["threshold"] == 6.0 and record["split"] == {"protocol": "temporal"}
    missing = runner.invoke(app, ["train", "--dataset", "nosuch", "--method", "ease"])
    assert missing.exit_code == 2 and "unknown dataset 'nosuch'" in missing.output
    assert "bring it with `pngnn ingest --name nosuch --ratings FILE`" in missing.output


# -- appending new interactions (issue 29 item 4) -----------------------------------------------------


def stored_log(conf: Settings) -> pl.DataFrame:
    with Store(conf.db_path, read_only=True) as store:
        return store.query_sql(
            "SELECT u.external_id AS customer, i.external_id AS sku, r.rating AS stars, r.ts FROM ratings r "
            "JOIN users u USING (dataset, user_id) JOIN items i USING (dataset, item_id) WHERE r.dataset = 'shop'"
        ).sort("customer", "sku")


def test_append_adds_only_new_rows_and_equals_ingesting_everything_at_once(tmp_path):
    from pngnn.data.prepare import append_user_data_step, split_step

    frame = log_frame(n=2_000).sort("when")  # unique pairs: fewer than 2,000 rows
    cut = frame.height - 400
    old, new = frame.head(cut), frame.tail(400)
    whole, parts = settings(tmp_path / "whole"), settings(tmp_path / "parts")
    ingest_user_data_step(whole, "shop", write(frame, tmp_path / "all.parquet"), COLUMNS, like_threshold=6)
    ingest_user_data_step(parts, "shop", write(old, tmp_path / "old.parquet"), COLUMNS, like_threshold=6)
    split_step(parts, "shop", 1, protocol="temporal")
    overlap = pl.concat([old.tail(50), new])  # an export that repeats the last 50 rows of the one before
    first = append_user_data_step(parts, "shop", write(overlap, tmp_path / "new.csv"), COLUMNS)
    assert (first.added, first.updated, first.present) == (400, 0, 50) and first.n_ratings == frame.height
    assert stored_log(parts).equals(stored_log(whole))
    with Store(parts.db_path, read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM splits WHERE dataset = 'shop'") == 0  # drawn again next time
        users, items = store.query_sql("SELECT n_users, n_items FROM datasets WHERE dataset = 'shop'").row(0)
        idx = store.query_sql("SELECT user_idx FROM users WHERE dataset = 'shop' ORDER BY user_idx")["user_idx"]
    assert (users, items) == (frame["customer"].n_unique(), frame["sku"].n_unique())
    assert idx.to_list() == list(range(users))  # new users take the next model rows
    split_step(parts, "shop", 1, protocol="temporal")
    with Store(parts.db_path, read_only=True) as store:
        split = load_split(store, "shop", 1)
    assert len(split.train) + len(split.test) == frame.height and split.n_users == users
    again = append_user_data_step(parts, "shop", str(tmp_path / "new.csv"), COLUMNS)
    assert (again.added, again.updated, again.present) == (0, 0, 450) and again.checksum == first.checksum
    with Store(parts.db_path, read_only=True) as store:  # nothing changed, so the split stays
        assert store.scalar("SELECT count(*) FROM splits WHERE dataset = 'shop'") == frame.height


def test_append_updates_a_pair_with_a_later_time_and_skips_an_earlier_one(tmp_path):
    from pngnn.data.prepare import append_user_data_step

    base = pl.DataFrame({"customer": ["a", "b"], "sku": ["x", "x"], "stars": [2.0, 9.0],
                         "when": [START + timedelta(days=10)] * 2})
    later = pl.DataFrame({"customer": ["a", "b"], "sku": ["x", "x"], "stars": [8.0, 1.0],
                          "when": [START + timedelta(days=20), START + timedelta(days=5)]})
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "shop", write(base, tmp_path / "base.csv"), COLUMNS, like_threshold=6)
    result = append_user_data_step(conf, "shop", write(later, tmp_path / "later.csv"), COLUMNS)
    assert (result.added, result.updated, result.present) == (0, 1, 1)
    assert dict(zip(*stored_log(conf).select("customer", "stars"), strict=True)) == {"a": 8.0, "b": 9.0}


def test_append_to_movielens_to_nothing_or_of_the_other_kind_is_one_line(tmp_path, ml100k_db_copy):
    from pngnn.data.prepare import append_user_data_step

    path = write(log_frame(), tmp_path / "log.parquet")
    movielens = Settings(db_path=ml100k_db_copy, data_dir=tmp_path)
    with pytest.raises(PngnnError, match="it is a MovieLens dataset, which is ingested whole"):
        append_user_data_step(movielens, "ml-100k", path, COLUMNS)
    conf = settings(tmp_path)
    with pytest.raises(PngnnError, match="'nosuch': it is not ingested yet"):
        append_user_data_step(conf, "nosuch", path, COLUMNS)
    ingest_user_data_step(conf, "shop", path, COLUMNS, like_threshold=6)
    with pytest.raises(PngnnError, match="has no rating column and the dataset it is appended to is rated"):
        append_user_data_step(conf, "shop", write(log_frame().drop("stars"), tmp_path / "c.parquet"),
                              "user=customer,item=sku,time=when")


def test_append_from_the_command_line(tmp_path, monkeypatch):
    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "pngnn.duckdb"))
    frame = log_frame().sort("when")
    runner = CliRunner()
    base = ["ingest", "--name", "shop", "--columns", COLUMNS]
    first = runner.invoke(app, [*base, "--ratings", write(frame.head(300), tmp_path / "a.parquet"),
                                "--like-threshold", "6"])
    assert first.exit_code == 0, first.output
    out = runner.invoke(app, [*base, "--ratings", write(frame.tail(frame.height - 300), tmp_path / "b.parquet"),
                              "--append"])
    assert out.exit_code == 0, out.output
    assert f"shop: appended {frame.height - 300} new interactions, updated 0, skipped 0" in out.output
    fixed = runner.invoke(app, [*base, "--ratings", str(tmp_path / "b.parquet"), "--append", "--like-threshold", "5"])
    assert fixed.exit_code == 2 and "--like-threshold is fixed at a dataset's first ingest" in fixed.output
