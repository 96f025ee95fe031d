"""Seeded train/valid/test splits in DuckDB and their loading."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pngnn.core.errors import PngnnError
from pngnn.data.ingest import ingest
from pngnn.data.split import create_split, draw_parts, load_split
from pngnn.data.store import Store


def split_frame(store: Store, seed: int, dataset: str = "ml-100k") -> pl.DataFrame:
    return store.query_sql(
        "SELECT user_id, item_id, rating, part FROM splits WHERE dataset = $d AND seed = $s ORDER BY user_id, item_id",
        d=dataset,
        s=seed,
    )


def test_same_seed_same_split_in_two_files(ml100k_raw, tmp_path):
    frames = []
    for name in ("a", "b"):
        with Store(tmp_path / f"{name}.duckdb") as store:
            ingest(store, ml100k_raw)
            create_split(store, "ml-100k", 7)
            frames.append(split_frame(store, 7))
    assert frames[0].height == 100_000
    assert frames[0].equals(frames[1])


def test_different_seed_different_split(ml100k_db_copy):
    with Store(ml100k_db_copy) as store:
        create_split(store, "ml-100k", 2)
        one, two = split_frame(store, 1), split_frame(store, 2)
    # same ratings, in the same order...
    assert one.select("user_id", "item_id", "rating").equals(two.select("user_id", "item_id", "rating"))
    # ...assigned to different parts (two independent 80/20 draws agree on ~68% of ratings)
    assert (one["part"] != two["part"]).sum() > 10_000


def test_split_matches_the_seeded_permutation(ml100k_store, ml100k_raw):
    """The stored parts are draw_parts(n, seed) laid over ratings in (user_id, item_id) order."""
    expected = draw_parts(100_000, 1, 0.2, 0.0)
    ordered = ml100k_raw.ratings.sort("user_id", "item_id")
    stored = split_frame(ml100k_store, 1)
    np.testing.assert_array_equal(stored["user_id"].to_numpy(), ordered["user_id"].to_numpy())
    np.testing.assert_array_equal(stored["item_id"].to_numpy(), ordered["item_id"].to_numpy())
    np.testing.assert_array_equal(stored["rating"].to_numpy(), ordered["rating"].to_numpy())
    np.testing.assert_array_equal(stored["part"].to_numpy(), expected.astype(str))


def test_draw_parts_determinism_and_proportions():
    a = draw_parts(1000, 5, 0.2, 0.1)
    np.testing.assert_array_equal(a, draw_parts(1000, 5, 0.2, 0.1))
    assert not np.array_equal(a, draw_parts(1000, 6, 0.2, 0.1))
    # n_test = round(1000 * 0.2) = 200; n_valid = round((1000 - 200) * 0.1) = 80; train = 720
    assert (a == "test").sum() == 200
    assert (a == "valid").sum() == 80
    assert (a == "train").sum() == 720


@pytest.mark.parametrize(("test_fraction", "valid_fraction"), [(0.0, 0.0), (1.0, 0.0), (0.2, 1.0), (0.2, -0.1)])
def test_draw_parts_bad_fractions(test_fraction, valid_fraction):
    with pytest.raises(PngnnError, match="fraction"):
        draw_parts(10, 1, test_fraction, valid_fraction)


def test_parts_disjoint_and_cover_all_ratings(ml100k_store):
    store = ml100k_store
    # every rating sits in exactly one part
    assert store.scalar("SELECT count(*) FROM splits WHERE dataset = 'ml-100k' AND seed = 1") == 100_000
    assert (
        store.scalar(
            "SELECT count(*) FROM (SELECT user_id, item_id FROM splits WHERE dataset = 'ml-100k' AND seed = 1 "
            "GROUP BY user_id, item_id HAVING count(*) > 1)"
        )
        == 0
    )
    # and the split's (user, item, rating) rows are exactly the ratings table's
    assert (
        store.scalar(
            "SELECT count(*) FROM (SELECT user_id, item_id, rating FROM ratings WHERE dataset = 'ml-100k' "
            "EXCEPT SELECT user_id, item_id, rating FROM splits WHERE dataset = 'ml-100k' AND seed = 1)"
        )
        == 0
    )


def test_ratio_80_20(ml100k_store):
    meta = ml100k_store.query_sql("SELECT * FROM split_meta WHERE dataset = 'ml-100k' AND seed = 1").row(0, named=True)
    # round(100000 * 0.2) = 20000 test, the other 80000 train, no validation
    assert (meta["n_train"], meta["n_valid"], meta["n_test"]) == (80_000, 0, 20_000)
    parts = dict(
        ml100k_store.query_sql(
            "SELECT part, count(*) AS n FROM splits WHERE dataset = 'ml-100k' AND seed = 1 GROUP BY part"
        ).iter_rows()
    )
    assert parts == {"train": 80_000, "test": 20_000}


def test_validation_carve_out(ml100k_db_copy):
    with Store(ml100k_db_copy) as store:
        counts = create_split(store, "ml-100k", 11, test_fraction=0.2, valid_fraction=0.1)
        # test = round(100000 * 0.2) = 20000; valid = round(80000 * 0.1) = 8000; train = 72000
        assert counts == {"train": 72_000, "valid": 8_000, "test": 20_000}
        data = load_split(store, "ml-100k", 11)
        assert (len(data.train), len(data.valid), len(data.test)) == (72_000, 8_000, 20_000)
        # 10/70/20 split with a different rounding: 100000 * 0.3 = 30000 test, 70000 * 0.25 = 17500 valid
        counts = create_split(store, "ml-100k", 12, test_fraction=0.3, valid_fraction=0.25)
        assert counts == {"train": 52_500, "valid": 17_500, "test": 30_000}


def test_empty_part_is_an_error(tmp_path, make_raw):
    with Store(tmp_path / "t.duckdb") as store:
        ingest(store, make_raw([(1, 1, 5.0)]))
        # 1 rating: round(1 * 0.2) = 0 test ratings
        with pytest.raises(PngnnError) as exc:
            create_split(store, "tiny", 1)
        assert "empty" in str(exc.value) and "\n" not in str(exc.value)
        assert store.scalar("SELECT count(*) FROM splits") == 0
        assert store.scalar("SELECT count(*) FROM split_meta") == 0


def test_split_of_missing_dataset(tmp_path):
    with Store(tmp_path / "t.duckdb") as store, pytest.raises(PngnnError, match="pngnn ingest"):
        create_split(store, "ml-1m", 1)


def test_reuse_does_not_rewrite(ml100k_db_copy, monkeypatch):
    with Store(ml100k_db_copy) as store:
        before = store.query_sql("SELECT * FROM split_meta WHERE seed = 1")
        rows_before = split_frame(store, 1)
        calls = []
        real_run = store.run_file
        monkeypatch.setattr(store, "run_file", lambda name, **p: (calls.append(name), real_run(name, **p)))
        assert create_split(store, "ml-100k", 1) == {"train": 80_000, "valid": 0, "test": 20_000}
        assert calls == []  # no SQL was run to rewrite the split
        assert store.query_sql("SELECT * FROM split_meta WHERE seed = 1").equals(before)  # same created_at
        assert split_frame(store, 1).equals(rows_before)
        # different fractions for the same seed do rewrite it
        assert create_split(store, "ml-100k", 1, valid_fraction=0.1)["valid"] == 8_000
        assert calls == ["split"]
        assert store.scalar("SELECT count(*) FROM split_meta WHERE seed = 1") == 1
        assert store.scalar("SELECT count(*) FROM splits WHERE seed = 1") == 100_000
        # force rewrites with the same fractions
        create_split(store, "ml-100k", 1, valid_fraction=0.1, force=True)
        assert calls == ["split", "split"]
        assert store.scalar("SELECT count(*) FROM splits WHERE seed = 1") == 100_000


def test_load_split_consistent_with_db(ml100k_store, ml100k_split):
    data = ml100k_split
    store = ml100k_store
    assert (data.dataset, data.seed) == ("ml-100k", 1)
    assert (data.n_users, data.n_items) == (943, 1682)
    assert (len(data.train), len(data.valid), len(data.test)) == (80_000, 0, 20_000)
    for part in (data.train, data.test):
        assert part.users.dtype == np.int64 and part.items.dtype == np.int64 and part.ratings.dtype == np.float32
        assert part.users.min() >= 0 and part.users.max() < data.n_users
        assert part.items.min() >= 0 and part.items.max() < data.n_items
    # per-part rating sums agree with SQL
    for name, part in (("train", data.train), ("test", data.test)):
        total = store.scalar(
            "SELECT sum(rating) FROM splits WHERE dataset = 'ml-100k' AND seed = 1 AND part = $part", part=name
        )
        assert float(part.ratings.sum(dtype=np.float64)) == pytest.approx(total)
    # no (user, item) pair in both train and test
    train_keys = data.train.users * data.n_items + data.train.items
    test_keys = data.test.users * data.n_items + data.test.items
    assert np.intersect1d(train_keys, test_keys).size == 0
    # one rating checked through the index tables: user 196 rated item 242 with 3 (first line of u.data)
    u = store.scalar("SELECT user_idx FROM users WHERE dataset = 'ml-100k' AND user_id = 196")
    i = store.scalar("SELECT item_idx FROM items WHERE dataset = 'ml-100k' AND item_id = 242")
    everywhere = np.concatenate([data.train.users * data.n_items + data.train.items, test_keys])
    ratings = np.concatenate([data.train.ratings, data.test.ratings])
    assert ratings[everywhere == u * data.n_items + i].tolist() == [3.0]


def test_load_missing_split_names_the_command(ml100k_store):
    with pytest.raises(PngnnError) as exc:
        load_split(ml100k_store, "ml-100k", 99)
    msg = str(exc.value)
    assert "pngnn split" in msg and "99" in msg and "\n" not in msg


def test_load_split_of_missing_dataset(tmp_path):
    with Store(tmp_path / "t.duckdb") as store, pytest.raises(PngnnError, match="pngnn ingest"):
        load_split(store, "ml-1m", 1)
