"""Answers -> augmented edges: never a test item, deduplicated, idempotent; loading and
the edges' own precision."""

from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fault_llm_server import FaultLLMServer, Script

from pngnn.augment import augment, edge_precision, load_augmented, merge_augmented
from pngnn.augment.prompts import PROMPT_VERSION
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings
from pngnn.data.store import Store

SEED = 1
MODEL = "fault-model"
RATED = "SELECT user_id, item_id, part, rating FROM splits WHERE dataset = 'ml-100k' AND seed = 1"


def settings(server: FaultLLMServer, **kw) -> LLMSettings:
    return LLMSettings(base_url=server.base_url, model=MODEL, schema_mode="json_object", backoff_initial_s=0.01,
                       **kw)


def by_title(body: dict) -> str:
    """A deterministic 'model' that ignores positions: like = alphabetically first title,
    dislike = last. Asked twice in different orders, it answers the same items."""
    text = body["messages"][-1]["content"].split("Candidate movies")[1]
    numbered = re.findall(r"^(\d+)\. (.+)$", text, flags=re.MULTILINE)
    ordered = sorted(numbered, key=lambda m: m[1])
    return json.dumps({"like": int(ordered[0][0]), "dislike": int(ordered[-1][0])})


def run(store: Store, split, model, script: Script | None = None, **kw):
    with FaultLLMServer(script) as server:
        return augment(store, "ml-100k", SEED, model, settings(server), split=split, progress=False,
                       **{"sample": 40, **kw})


def answers(store: Store) -> pl.DataFrame:
    """(user_id, variant, like_item, dislike_item) of the ok answers, computed in Polars."""
    frame = store.query_sql(
        "SELECT p.user_id, p.variant, p.items, c.like_idx, c.dislike_idx FROM llm_prompts p "
        "JOIN llm_cache c ON c.key = p.key WHERE c.status = 'ok'"
    )
    return frame.with_columns(
        like_item=pl.col("items").list.get(pl.col("like_idx") - 1),
        dislike_item=pl.col("items").list.get(pl.col("dislike_idx") - 1),
    ).drop("items")


def edges(store: Store) -> pl.DataFrame:
    return store.query_sql("SELECT user_id, item_id, kind, run_id FROM augmented_edges ORDER BY ALL")


def test_like_is_positive_dislike_is_negative(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        summary = run(store, ml100k_split, ml100k_lightgcn)
        counts = merge_augmented(store, "ml-100k", SEED, MODEL, run_id="run-1")
        got = edges(store)
        expected = pl.concat([
            answers(store).select("user_id", pl.col("like_item").alias("item_id"), kind=pl.lit("positive")),
            answers(store).select("user_id", pl.col("dislike_item").alias("item_id"), kind=pl.lit("negative")),
        ])
        assert counts["positive"] + counts["negative"] + counts["dropped_rated"] == 2 * summary.ok == 80
        assert got.height == counts["positive"] + counts["negative"] > 0
        assert got.select("user_id", "item_id", "kind").join(expected, on=["user_id", "item_id", "kind"],
                                                            how="anti").is_empty()
        assert set(got["run_id"]) == {"run-1"}
        prov = store.query_sql("SELECT DISTINCT dataset, seed, model, prompt_version FROM augmented_edges")
        assert prov.rows() == [("ml-100k", SEED, MODEL, PROMPT_VERSION)]


def test_an_edge_never_leaks_a_test_item(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        run(store, ml100k_split, ml100k_lightgcn, sample=120)
        # Make the LLM 'like' a held-out test item wherever one is among the candidates
        # (candidates mask only train/valid, so test items are shown): the worst case.
        store.con.execute(
            """
            UPDATE llm_cache c SET like_idx = f.pos, dislike_idx = CASE WHEN f.pos = 1 THEN 2 ELSE 1 END
            FROM (
                SELECT p.key, min(s.pos) AS pos FROM (
                    SELECT key, user_id, unnest(items) AS item_id, generate_subscripts(items, 1) AS pos
                    FROM llm_prompts) s
                JOIN llm_prompts p ON p.key = s.key
                JOIN splits t ON t.dataset = 'ml-100k' AND t.seed = 1 AND t.part = 'test'
                               AND t.user_id = s.user_id AND t.item_id = s.item_id
                GROUP BY p.key
            ) f WHERE c.key = f.key
            """
        )
        forced = answers(store).join(store.query_sql(RATED), left_on=["user_id", "like_item"],
                                     right_on=["user_id", "item_id"])
        assert forced.height > 10 and set(forced["part"]) == {"test"}
        counts = merge_augmented(store, "ml-100k", SEED, MODEL)
        got = edges(store)
        assert got.join(store.query_sql(RATED), on=["user_id", "item_id"]).is_empty()  # no rated pair, test included
        all_edges = pl.concat([
            answers(store).select("user_id", item_id="like_item"),
            answers(store).select("user_id", item_id="dislike_item"),
        ])
        hits = all_edges.join(store.query_sql(RATED), on=["user_id", "item_id"]).height
        assert counts["dropped_rated"] == hits >= forced.height
        pos, _ = load_augmented(store, "ml-100k", SEED)
        test = ml100k_split.test
        test_pairs = set(zip(test.users.tolist(), test.items.tolist(), strict=True))
        assert not test_pairs & set(zip(pos.users.tolist(), pos.items.tolist(), strict=True))


def test_merge_is_idempotent(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        run(store, ml100k_split, ml100k_lightgcn)
        first = merge_augmented(store, "ml-100k", SEED, MODEL, run_id="a")
        before = edges(store).drop("run_id")
        second = merge_augmented(store, "ml-100k", SEED, MODEL, run_id="b")
        after = edges(store)
        assert first == second and before.equals(after.drop("run_id"))
        assert set(after["run_id"]) == {"b"}  # replaced, not appended
        # another model's edges are kept apart and left alone
        store.con.execute("UPDATE llm_prompts SET model = 'other' WHERE user_id % 2 = 0")
        merge_augmented(store, "ml-100k", SEED, "other")
        merge_augmented(store, "ml-100k", SEED, MODEL)
        per_model = dict(store.query_sql("SELECT model, count(*) AS n FROM augmented_edges GROUP BY model").rows())
        assert per_model["other"] > 0 and per_model[MODEL] < before.height
        assert sum(per_model.values()) == before.height


def test_self_consistency_keeps_only_agreeing_answers(ml100k_db_copy: Path, ml100k_split,
                                                      ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        run(store, ml100k_split, ml100k_lightgcn, Script(responder=by_title), self_consistency=True)
        got = answers(store)
        assert got.height == 80 and set(got["variant"]) == {0, 1}
        counts = merge_augmented(store, "ml-100k", SEED, MODEL)
        assert counts["positive"] + counts["negative"] + counts["dropped_rated"] == 80  # each pair counted once
        assert edges(store).select("user_id", "kind").is_duplicated().sum() == 0
    with Store(ml100k_db_copy) as store:  # a position-biased model: "like 1, dislike 2" whatever the order
        store.con.execute("DELETE FROM llm_cache; DELETE FROM llm_prompts")
        run(store, ml100k_split, ml100k_lightgcn, self_consistency=True)
        got = answers(store)
        wide = got.filter(pl.col("variant") == 0).join(got.filter(pl.col("variant") == 1), on="user_id")
        agree_like = wide.filter(pl.col("like_item") == pl.col("like_item_right")).height
        agree_dislike = wide.filter(pl.col("dislike_item") == pl.col("dislike_item_right")).height
        counts = merge_augmented(store, "ml-100k", SEED, MODEL)
        assert counts["positive"] + counts["negative"] + counts["dropped_rated"] == agree_like + agree_dislike
        assert agree_like + agree_dislike < 20  # most disagree: the bias is filtered out


def test_load_augmented_gives_dense_indices_once(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        run(store, ml100k_split, ml100k_lightgcn)
        counts = merge_augmented(store, "ml-100k", SEED, MODEL)
        pos, neg = load_augmented(store, "ml-100k", SEED)
        assert (len(pos), len(neg)) == (counts["positive"], counts["negative"])
        assert pos.users.dtype == np.int64 and pos.ratings.dtype == np.float32
        assert set(pos.ratings.tolist()) == {5.0} and set(neg.ratings.tolist()) == {1.0}
        assert pos.users.max() < ml100k_split.n_users and pos.items.max() < ml100k_split.n_items
        # indices point at the same (user_id, item_id) as in augmented_edges
        users = store.query_sql("SELECT user_idx, user_id FROM users WHERE dataset = 'ml-100k'")
        items = store.query_sql("SELECT item_idx, item_id FROM items WHERE dataset = 'ml-100k'")
        back = (pl.DataFrame({"user_idx": pos.users.astype(np.int32), "item_idx": pos.items.astype(np.int32)})
                .join(users, on="user_idx").join(items, on="item_idx").select("user_id", "item_id").sort("user_id"))
        direct = edges(store).filter(pl.col("kind") == "positive").select("user_id", "item_id").sort("user_id")
        assert back.equals(direct)
        # a second model adding the same edges does not double them; a contradiction drops the pair
        store.con.execute(
            "INSERT INTO augmented_edges SELECT dataset, seed, user_id, item_id, kind, 'twin', prompt_version, "
            "run_id, created FROM augmented_edges"
        )
        contra = store.query_sql("SELECT user_id, item_id FROM augmented_edges WHERE kind = 'positive' LIMIT 1").row(0)
        store.con.execute(
            "INSERT INTO augmented_edges VALUES ('ml-100k', 1, $u, $i, 'negative', 'rival', 'v1', NULL, now())",
            {"u": contra[0], "i": contra[1]},
        )
        pos2, neg2 = load_augmented(store, "ml-100k", SEED)
        assert (len(pos2), len(neg2)) == (len(pos) - 1, len(neg))
        only_twin, _ = load_augmented(store, "ml-100k", SEED, model="twin")
        assert len(only_twin) == len(pos)


def test_edge_precision_against_base_rate(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        with pytest.raises(PngnnError, match="no usable LLM answer"):
            edge_precision(store, "ml-100k", SEED, MODEL)
        run(store, ml100k_split, ml100k_lightgcn, Script(responder=by_title), sample=100)
        result = edge_precision(store, "ml-100k", SEED, MODEL)
        # independent computation in Polars
        test = store.query_sql(RATED + " AND part = 'test'")
        got = answers(store)
        shown = store.query_sql("SELECT user_id, unnest(items) AS item_id FROM llm_prompts").join(
            test, on=["user_id", "item_id"], how="left")
        likes = got.join(test, left_on=["user_id", "like_item"], right_on=["user_id", "item_id"], how="left")
        dislikes = got.join(test, left_on=["user_id", "dislike_item"], right_on=["user_id", "item_id"], how="left")
        assert result["n_answers"] == 100 and result["n_candidates"] == 1000
        assert result["like_precision"] == pytest.approx((likes["rating"] > 3.5).sum() / 100)
        assert result["dislike_precision"] == pytest.approx((dislikes["rating"] <= 3.5).sum() / 100)
        assert result["like_base_rate"] == pytest.approx((shown["rating"] > 3.5).sum() / 1000)
        assert result["dislike_base_rate"] == pytest.approx((shown["rating"] <= 3.5).sum() / 1000)
        assert result["like_lift"] == pytest.approx(result["like_precision"] / result["like_base_rate"])


def test_a_run_trains_on_its_own_llm_edges_only(ml100k_db_copy: Path) -> None:
    """Two LLMs (or prompt versions) merged edges for the same split: a run that names one
    loads that one's edges, records how many and which (a hash), and a source with no edges
    is an error, not a silent run on an empty set."""
    from pngnn.augment.edges import EdgeSource, load_split_step
    from pngnn.core.settings import Settings

    with Store(ml100k_db_copy) as store:
        pairs = store.con.execute("SELECT user_id, item_id FROM splits WHERE dataset = 'ml-100k' AND seed = 1 "
                                  "ORDER BY user_id, item_id LIMIT 9").fetchall()
        rows = [(u, i, kind, model, version) for (u, i), (kind, model, version) in zip(pairs, [
            ("positive", "model-a", "v1"), ("negative", "model-a", "v1"), ("positive", "model-a", "v1"),
            ("positive", "model-b", "v1"), ("positive", "model-b", "v1"), ("negative", "model-b", "v1"),
            ("positive", "model-b", "v1"), ("positive", "model-a", "v2"), ("negative", "model-a", "v2")], strict=True)]
        store.con.executemany("INSERT INTO augmented_edges VALUES ('ml-100k', 1, ?, ?, ?, ?, ?, NULL, now())", rows)
    settings = Settings(db_path=ml100k_db_copy)
    loaded = {(m, v): load_split_step(settings, "ml-100k", 1, EdgeSource(m, v))
              for m, v in [("model-a", "v1"), ("model-b", "v1"), ("model-a", "v2")]}
    assert {key: len(split.augmented) for key, split in loaded.items()} == {
        ("model-a", "v1"): 3, ("model-b", "v1"): 4, ("model-a", "v2"): 2}
    assert {key: int((split.augmented.ratings > 3.5).sum()) for key, split in loaded.items()} == {
        ("model-a", "v1"): 2, ("model-b", "v1"): 3, ("model-a", "v2"): 1}
    digests = [split.augmented_digest() for split in loaded.values()]
    assert [d["llm_edges"] for d in digests] == [3, 4, 2]
    assert len({d["llm_edges_sha256"] for d in digests}) == 3
    again = load_split_step(settings, "ml-100k", 1, EdgeSource("model-a", "v1"))
    assert again.augmented_digest() == digests[0]  # the hash names the edges, not the load
    assert load_split_step(settings, "ml-100k", 1).augmented is None
    with pytest.raises(PngnnError, match=r"no LLM edges of model 'model-c'.*pngnn augment"):
        load_split_step(settings, "ml-100k", 1, EdgeSource("model-c", "v1"))


def test_training_warns_in_one_line_when_the_edges_reach_fewer_users_than_asked(
        ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from fault_llm_server import garbage

    from pngnn.augment.edges import EdgeSource, load_split_step
    from pngnn.core.settings import Settings

    conf = Settings(data_dir=tmp_path, db_path=ml100k_db_copy, mlflow_uri=f"sqlite:///{tmp_path}/m.db")
    source = EdgeSource(MODEL, PROMPT_VERSION)

    def warnings_on_load() -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="pngnn.augment.edges"):
            load_split_step(conf, "ml-100k", SEED, source)
        return [r.getMessage() for r in caplog.records if r.name == "pngnn.augment.edges"]

    def covered() -> int:
        with Store(ml100k_db_copy) as store:
            return store.scalar("SELECT count(DISTINCT user_id) FROM augmented_edges")

    with Store(ml100k_db_copy) as store:
        script = Script(actions=deque([garbage("?")] * 3))
        summary = run(store, ml100k_split, ml100k_lightgcn, script, sample=10)
        assert (summary.usable, summary.failed_permanent) == (7, 3)
        merge_augmented(store, "ml-100k", SEED, MODEL)
    (line,) = warnings_on_load()
    assert "\n" not in line
    assert f"cover {covered()} of the 10 users asked on ml-100k split 1 (3 without a usable answer" in line
    assert "rerun `pngnn augment --dataset ml-100k --seed 1 --model fault-model`" in line
    with Store(ml100k_db_copy) as store:
        with FaultLLMServer() as server:
            augment(store, "ml-100k", SEED, ml100k_lightgcn, settings(server, retry_failed=True),
                    split=ml100k_split, progress=False, sample=10)
        merge_augmented(store, "ml-100k", SEED, MODEL)
    lines = warnings_on_load()
    if covered() == 10:
        assert lines == []
    # Every prompt answered, some users without an edge (as when both of a user's edges fall on
    # items the split rates, which the merge drops): said as such, and no rerun is suggested.
    with Store(ml100k_db_copy) as store:
        store.run_sql("DELETE FROM augmented_edges WHERE user_id IN "
                      "(SELECT DISTINCT user_id FROM augmented_edges ORDER BY user_id LIMIT 2)")
    (line,) = warnings_on_load()
    assert f"cover {covered()} of the 10 users asked on ml-100k split 1 (0 without a usable answer" in line
    assert "a rerun would not change it" in line and "pngnn augment" not in line
