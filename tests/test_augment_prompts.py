"""Candidates and prompts: what the LLM is shown, for whom, in which order."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from pngnn.augment.candidates import candidates_frame, select_users, top_candidates
from pngnn.augment.prompts import PROMPT_VERSION, build_prompts, history_rows, messages
from pngnn.core.errors import PngnnError
from pngnn.data.ingest import ingest
from pngnn.data.split import create_split
from pngnn.data.store import Store

LATIN1_TITLES = {1: "Misérables, Les (1995)", 2: "Cité des enfants perdus, La (1995)", 3: "Nénette et Boni (1996)"}


@pytest.fixture
def tiny_store(tmp_path: Path, make_raw):
    """Three users: user 1 has only 4 ratings (fewer than the history size), user 2 has
    many liked and disliked ratings; some titles are Latin-1 (accented)."""
    ratings = [(1, 1, 5.0), (1, 2, 1.0), (1, 3, 4.0), (1, 4, 2.0)]
    ratings += [(2, i, 5.0 if i % 2 else 2.0) for i in range(1, 21)]
    ratings += [(3, i, 3.0) for i in range(5, 15)]
    raw = make_raw(ratings, item_ids=list(range(1, 31)))
    titles = pl.Series([LATIN1_TITLES.get(i, f"Movie {i} (2000)") for i in raw.items["item_id"]])
    years = titles.str.extract(r"\((\d{4})\)$", 1).cast(pl.Int32)
    raw = dataclasses.replace(raw, items=raw.items.with_columns(title=titles, year=years))
    store = Store(tmp_path / "tiny.duckdb")
    ingest(store, raw)
    create_split(store, "tiny", 1, test_fraction=0.2)
    yield store
    store.close()


def _train(store: Store, user: int) -> pl.DataFrame:
    return store.query_sql(
        "SELECT item_id, rating FROM splits WHERE dataset = 'tiny' AND seed = 1 AND part = 'train' "
        f"AND user_id = {user} ORDER BY item_id"
    )


def _cands(user: int, items: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": [user] * len(items), "rank": list(range(1, len(items) + 1)), "item_id": items},
                        schema={"user_id": pl.Int32, "rank": pl.Int32, "item_id": pl.Int32})


def test_latin1_titles_survive_into_prompt_and_request(tiny_store: Store) -> None:
    prompts = build_prompts(tiny_store, "tiny", 1, _cands(3, [1, 2, 3, 25]), history_size=10)
    content = prompts["content"][0]
    for title in ("Misérables, Les (1995)", "Cité des enfants perdus, La (1995)", "Nénette et Boni (1996)"):
        assert title in content
    assert "Ã" not in content  # no mojibake (UTF-8 bytes read as Latin-1)
    assert messages(content)[1]["content"].encode("utf-8").decode("utf-8") == content


def test_latin1_titles_from_real_movielens(ml100k_store: Store) -> None:
    user = ml100k_store.scalar(
        "SELECT min(user_id) FROM splits WHERE dataset = 'ml-100k' AND seed = 1 AND item_id = 543 AND part = 'train'"
    )
    cands = _cands(user, [1233, 1, 2])  # 1233: "Nénette et Boni (1996)"
    content = build_prompts(ml100k_store, "ml-100k", 1, cands, history_size=1000)["content"][0]
    assert "Misérables, Les (1995); Drama, Musical; rated" in content
    assert "Nénette et Boni (1996); Drama" in content


def test_user_with_fewer_ratings_than_history_shows_all_of_them(tiny_store: Store) -> None:
    train = _train(tiny_store, 1)
    assert 0 < train.height < 10
    rows = history_rows(tiny_store, "tiny", 1, pl.Series("user_id", [1], dtype=pl.Int32), history_size=10)
    assert sorted(rows["item_id"].to_list()) == train["item_id"].to_list()
    content = build_prompts(tiny_store, "tiny", 1, _cands(1, [20, 21, 22]), history_size=10)["content"][0]
    assert content.count("; rated ") == train.height


def test_history_is_balanced_and_from_train_only(tiny_store: Store) -> None:
    train = _train(tiny_store, 2)
    rows = history_rows(tiny_store, "tiny", 1, pl.Series("user_id", [2], dtype=pl.Int32), history_size=6)
    assert rows.height == 6
    assert set(rows["item_id"]) <= set(train["item_id"])  # never a test rating
    assert (rows["rating"] > 3.5).sum() == 3 and (rows["rating"] <= 3.5).sum() == 3
    # a user with only 'disliked' (3.0) ratings is topped up from that side
    rows3 = history_rows(tiny_store, "tiny", 1, pl.Series("user_id", [3], dtype=pl.Int32), history_size=6)
    assert rows3.height == 6 and (rows3["rating"] <= 3.5).all()


def test_empty_candidate_list_is_an_error(tiny_store: Store) -> None:
    with pytest.raises(PngnnError, match="empty candidate list") as info:
        build_prompts(tiny_store, "tiny", 1, _cands(1, []))
    assert "\n" not in str(info.value)
    with pytest.raises(PngnnError, match=r"fewer than 2 candidates \(e\.g\. user 1\)"):
        build_prompts(tiny_store, "tiny", 1, pl.concat([_cands(1, [25]), _cands(2, [25, 26])]))


def test_candidates_are_numbered_and_shuffled_with_a_seed(tiny_store: Store) -> None:
    items = list(range(21, 31))
    base = build_prompts(tiny_store, "tiny", 1, _cands(2, items), variants=2)
    content = base["content"][0]
    numbers = [int(m) for m in re.findall(r"^(\d+)\. ", content, flags=re.MULTILINE)]
    assert numbers == list(range(1, 11))
    assert content.endswith("using two different candidate numbers from 1 to 10.")
    assert '{"like": <number>, "dislike": <number>}' in content
    shown = base["items"][0].to_list()
    assert sorted(shown) == items and shown != items  # shuffled, not the LightGCN rank order
    # the numbers in the text match the stored order
    for number, item in enumerate(shown, start=1):
        assert f"{number}. Movie {item} (2000)" in content
    again = build_prompts(tiny_store, "tiny", 1, _cands(2, items), variants=2)
    assert again["content"].to_list() == base["content"].to_list()  # same seed, same prompt
    assert base["items"][1].to_list() != shown  # variant 1: another order (self-consistency)
    other = build_prompts(tiny_store, "tiny", 1, _cands(2, items), prompt_seed=7)
    assert other["items"][0].to_list() != shown


def test_a_users_prompt_does_not_depend_on_the_other_users(tiny_store: Store) -> None:
    alone = build_prompts(tiny_store, "tiny", 1, _cands(2, [21, 22, 23, 24]))
    together = build_prompts(tiny_store, "tiny", 1, pl.concat([_cands(1, [25, 26, 27]), _cands(2, [21, 22, 23, 24])]))
    assert together.filter(pl.col("user_id") == 2)["content"][0] == alone["content"][0]  # cache hits on resampling


def test_prompt_version_is_a_string_constant() -> None:
    assert isinstance(PROMPT_VERSION, str) and PROMPT_VERSION


def test_select_users(ml100k_store: Store) -> None:
    everyone = select_users(ml100k_store, "ml-100k")
    assert everyone.height == 943
    sample = select_users(ml100k_store, "ml-100k", sample=25, sample_seed=3)
    assert sample.height == 25 and sample["user_idx"].is_sorted()
    assert sample.equals(select_users(ml100k_store, "ml-100k", sample=25, sample_seed=3))
    assert not sample.equals(select_users(ml100k_store, "ml-100k", sample=25, sample_seed=4))
    chosen = select_users(ml100k_store, "ml-100k", users=[5, 1, 5])
    assert chosen["user_id"].to_list() == [1, 5]
    with pytest.raises(PngnnError, match=r"2 unknown user id\(s\) for dataset 'ml-100k': 0, 99999") as info:
        select_users(ml100k_store, "ml-100k", users=[1, 99999, 0])
    assert "\n" not in str(info.value)
    with pytest.raises(PngnnError, match="not both"):
        select_users(ml100k_store, "ml-100k", users=[1], sample=3)


def _train_degree(split) -> np.ndarray:
    return np.bincount(split.train.users, minlength=split.n_users)


def test_sparsest_first_picks_the_users_with_fewest_train_ratings(ml100k_store: Store, ml100k_split) -> None:
    degree = _train_degree(ml100k_split)
    chosen = select_users(ml100k_store, "ml-100k", sample=40, by="sparsest", seed=1)
    assert chosen.height == 40 and chosen["user_idx"].is_sorted()
    inside = np.zeros(ml100k_split.n_users, dtype=bool)
    inside[chosen["user_idx"].to_numpy()] = True
    cut = degree[inside].max()
    assert cut <= degree[~inside & (degree > 0)].min()  # nobody left out is sparser than anyone chosen
    assert degree[inside].mean() < degree[degree > 0].mean() / 2
    # Another tie-break seed swaps only users at the cut degree.
    other = select_users(ml100k_store, "ml-100k", sample=40, by="sparsest", seed=1, sample_seed=7)
    below_cut = set(np.flatnonzero(inside & (degree < cut)))
    assert below_cut <= set(other["user_idx"].to_list())
    assert not chosen.equals(select_users(ml100k_store, "ml-100k", sample=40, sample_seed=0))  # not the random one


def test_sparsest_first_never_reads_test_ratings(ml100k_db_copy: Path) -> None:
    with Store(ml100k_db_copy) as store:
        before = select_users(store, "ml-100k", sample=30, by="sparsest", seed=1)
        # Poison: every chosen user gets 300 more test ratings, every other user loses theirs.
        store.run_sql("DELETE FROM splits WHERE dataset = 'ml-100k' AND seed = 1 AND part = 'test'")
        for user_id in before["user_id"].to_list():
            store.run_sql("INSERT INTO splits SELECT 'ml-100k', 1, $user, i, 5.0, 'test' "
                          "FROM range(100000, 100300) t(i)", user=user_id)
        after = select_users(store, "ml-100k", sample=30, by="sparsest", seed=1)
    assert after.equals(before)


def test_sparsest_first_needs_a_split(ml100k_store: Store) -> None:
    with pytest.raises(PngnnError, match="needs the split seed") as info:
        select_users(ml100k_store, "ml-100k", sample=5, by="sparsest")
    assert "\n" not in str(info.value)
    with pytest.raises(PngnnError, match=r"run `pngnn split ml-100k --seed 9` first"):
        select_users(ml100k_store, "ml-100k", sample=5, by="sparsest", seed=9)
    with pytest.raises(PngnnError, match="unknown user order 'densest'; choose one of: sparsest, random"):
        select_users(ml100k_store, "ml-100k", sample=5, by="densest")  # type: ignore[arg-type]


def test_candidates_are_the_top_unseen_items(ml100k_store: Store, ml100k_split, ml100k_lightgcn) -> None:
    users = np.array([0, 5, 17, 400], dtype=np.int64)
    items, scores = top_candidates(ml100k_lightgcn, ml100k_split, users, n=10, block=3)  # blocks of 3: 2 blocks
    full = ml100k_lightgcn.full_sort_predict(torch.from_numpy(users)).numpy()
    train = ml100k_split.train
    for row, u in enumerate(users):  # naive reference, one user at a time
        seen = set(train.items[train.users == u]) | set(ml100k_split.valid.items[ml100k_split.valid.users == u])
        order = [i for i in np.argsort(-full[row], kind="stable") if i not in seen][:10]
        assert set(items[row]) == set(order)
        assert not set(items[row]) & seen
        assert np.all(np.diff(scores[row]) <= 0)
    frame = candidates_frame(ml100k_store, ml100k_split, ml100k_lightgcn,
                             select_users(ml100k_store, "ml-100k", users=[1, 2]), n=5)
    assert frame.height == 10 and frame["rank"].to_list() == [1, 2, 3, 4, 5] * 2
    rated = ml100k_store.query_sql(
        "SELECT user_id, item_id FROM splits WHERE dataset = 'ml-100k' AND seed = 1 AND part <> 'test'"
    )
    assert frame.join(rated, on=["user_id", "item_id"], how="semi").is_empty()
