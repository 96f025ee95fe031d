"""Splits by time (issue 29 item 3): one global cutoff (``temporal``) and each user's last N
(``last``), their validation carve-outs, and the random default left exactly as it was."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pngnn.core.errors import PngnnError
from pngnn.data.protocols import last_parts, temporal_parts
from pngnn.data.split import create_split, draw_parts, load_split
from pngnn.data.store import Store


def test_temporal_parts_by_hand():
    times = np.array([5, 1, 3, 9, 7, 2, 8, 4, 6, 10])
    parts = temporal_parts(times, 0.2, 0.25)
    # test: after the time by which 8 of 10 had happened (t = 8): 9 and 10; valid: the latest 2 of
    # the 8 left (after t = 6): 7 and 8; train: 1..6.
    assert sorted(times[parts == "test"]) == [9, 10]
    assert sorted(times[parts == "valid"]) == [7, 8]
    assert sorted(times[parts == "train"]) == [1, 2, 3, 4, 5, 6]


def test_temporal_ties_at_the_cutoff_stay_in_train():
    times = np.array([1, 2, 3, 3, 3, 4])
    parts = temporal_parts(times, 0.5, 0.0)  # 3 of 6 by t = 3, and every 3 goes with it
    assert sorted(times[parts == "test"]) == [4]
    assert times[parts == "train"].max() < times[parts == "test"].min()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_test_interaction_precedes_the_cutoff_and_validation_is_the_latest_train(seed):
    times = np.random.default_rng(seed).integers(0, 500, size=2_000)
    parts = temporal_parts(times, 0.2, 0.1)
    train, valid, test = times[parts == "train"], times[parts == "valid"], times[parts == "test"]
    assert train.max() <= valid.min() and valid.max() <= test.min()
    assert train.max() < test.min()
    assert 0.15 < len(test) / len(times) <= 0.2  # ties only ever shrink a part
    assert 0.05 < len(valid) / (len(valid) + len(train)) <= 0.1


def test_last_holds_out_each_users_newest_and_spares_small_users():
    #                 user 0: 4 interactions   user 1: 2      user 2: 1
    users = np.array([0, 0, 0, 0, 1, 1, 2])
    items = np.array([10, 11, 12, 13, 10, 11, 12])
    times = np.array([1, 4, 3, 2, 7, 7, 5])  # user 1's two share a time: the larger item id is newer
    parts = last_parts(users, items, times, last_n=1, valid=True)
    assert dict(zip(zip(users.tolist(), items.tolist(), strict=True), parts.tolist(), strict=True)) == {
        (0, 11): "test", (0, 12): "valid", (0, 10): "train", (0, 13): "train",
        (1, 11): "test", (1, 10): "train",  # 2 interactions: a test one, none to spare for validation
        (2, 12): "train",  # 1 interaction: all train (no user is emptied)
    }
    two = last_parts(users, items, times, last_n=2, valid=False)
    assert sorted(items[(users == 0) & (two == "test")]) == [11, 12]
    assert set(two[users == 1]) == {"train"}  # 2 interactions, not more than last_n


def interactions_store(path, with_times: bool = True) -> Store:
    rng = np.random.default_rng(3)
    n = 400
    ratings = pl.DataFrame({
        "user_id": rng.integers(1, 21, n), "item_id": rng.integers(1, 61, n),
        "rating": rng.integers(1, 6, n).astype(np.float32),
        "ts": rng.integers(1_000, 100_000, n) if with_times else [None] * n,
    }).unique(["user_id", "item_id"], keep="first", maintain_order=True)
    store = Store(path)
    store.register("r", ratings)
    store.run_sql("INSERT INTO ratings SELECT 'toy', user_id, item_id, rating, ts FROM r")
    store.run_sql("INSERT INTO users (dataset, user_id, user_idx) SELECT 'toy', user_id, "
                  "(dense_rank() OVER (ORDER BY user_id)) - 1 FROM (SELECT DISTINCT user_id FROM r)")
    store.run_sql("INSERT INTO items (dataset, item_id, item_idx) SELECT 'toy', item_id, "
                  "(dense_rank() OVER (ORDER BY item_id)) - 1 FROM (SELECT DISTINCT item_id FROM r)")
    store.run_sql("INSERT INTO datasets (dataset, checksum, n_ratings, n_users, n_items, ingested_at) SELECT 'toy', "
                  "'sum', count(*), count(DISTINCT user_id), count(DISTINCT item_id), now() FROM r")
    store.unregister("r")
    return store


def stored_parts(store: Store, seed: int) -> pl.DataFrame:
    return store.query_sql("SELECT s.user_id, s.item_id, s.part, r.ts FROM splits s JOIN ratings r USING "
                           "(dataset, user_id, item_id) WHERE s.dataset = 'toy' AND s.seed = $seed", seed=seed)


def test_a_temporal_split_in_duckdb_loads_with_its_protocol(tmp_path):
    with interactions_store(tmp_path / "t.duckdb") as store:
        counts = create_split(store, "toy", 1, 0.2, 0.1, protocol="temporal")
        frame = stored_parts(store, 1)
        split = load_split(store, "toy", 1)
    by_part = {p: frame.filter(pl.col("part") == p)["ts"] for p in ("train", "valid", "test")}
    assert by_part["train"].max() < by_part["test"].min()
    assert by_part["train"].max() <= by_part["valid"].min() <= by_part["valid"].max() <= by_part["test"].min()
    assert counts == {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}
    assert split.protocol == "temporal" and split.last_n is None


def test_asking_another_protocol_replaces_the_seeds_split_and_random_is_the_seeded_draw(tmp_path):
    with interactions_store(tmp_path / "t.duckdb") as store:
        create_split(store, "toy", 1, protocol="last", last_n=2)
        assert load_split(store, "toy", 1).protocol == "last"
        create_split(store, "toy", 1)  # the default: random, as the paper's splits always were
        frame = store.query_sql("SELECT part FROM splits WHERE dataset = 'toy' AND seed = 1 ORDER BY user_id, item_id")
        split = load_split(store, "toy", 1)
    np.testing.assert_array_equal(frame["part"].to_numpy(), draw_parts(frame.height, 1, 0.2, 0.0).astype(str))
    assert split.protocol == "random"


def test_a_time_split_without_times_is_one_line_naming_the_fix(tmp_path):
    with interactions_store(tmp_path / "t.duckdb", with_times=False) as store:
        with pytest.raises(PngnnError, match="needs a time for every interaction") as info:
            create_split(store, "toy", 1, protocol="temporal")
        assert "--split random" in str(info.value) and "\n" not in str(info.value)
        assert store.scalar("SELECT count(*) FROM splits WHERE dataset = 'toy'") == 0  # nothing half-written


def test_the_split_command_takes_the_protocol_and_refuses_an_unknown_one(tmp_path, monkeypatch):
    from flows.cli import app

    db = tmp_path / "t.duckdb"
    interactions_store(db).close()
    monkeypatch.setenv("PNGNN_DB", str(db))
    runner = CliRunner()
    out = runner.invoke(app, ["split", "toy", "--seed", "4", "--split", "last", "--last-n", "1"])
    assert out.exit_code == 0, out.output
    assert "toy seed 4 (last)" in out.output
    bad = runner.invoke(app, ["split", "toy", "--seed", "4", "--split", "weekly"])
    assert bad.exit_code == 2 and "unknown split protocol 'weekly'" in bad.output


def test_train_on_a_temporal_split_writes_its_records_beside_the_random_ones(tmp_path, monkeypatch, ml100k_db_copy,
                                                                             data_dir):
    import json

    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    out = CliRunner().invoke(app, ["train", "--method", "mostpop", "--seed", "5", "--split", "temporal",
                                   "--results-dir", str(tmp_path / "results")])
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "results" / "ml-100k" / "mostpop-temporal" / "seed5.json").read_text())
    assert record["split"] == {"protocol": "temporal"}
    assert record["metrics"]["recall@20"] > 0
    with Store(ml100k_db_copy, read_only=True) as store:
        frame = store.query_sql(
            "SELECT s.part, r.ts FROM splits s JOIN ratings r USING (dataset, user_id, item_id) "
            "WHERE s.dataset = 'ml-100k' AND s.seed = 5")
    train = frame.filter(pl.col("part") == "train")["ts"]
    test = frame.filter(pl.col("part") == "test")["ts"]
    assert train.max() < test.min()
