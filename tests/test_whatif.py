"""The what-if answerer: answers of known accuracy, served over HTTP, through the real augmentation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pngnn.app.whatif import WhatIfPlan, decide_answers, hold_out, run_whatif
from pngnn.augment.oracle import OracleServer, candidate_base_rates, content_key, oracle_answers
from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.store import Store

TINY = TrainConfig(epochs=2, batch_size=4096, n_neg=2, l2=1e-3, dim=16, layers=2)


def _prompts(items: list[list[int]]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": list(range(1, len(items) + 1)), "items": items,
                         "content": [f"prompt of user {u}" for u in range(1, len(items) + 1)]},
                        schema={"user_id": pl.Int32, "items": pl.List(pl.Int32), "content": pl.String})


def test_a_perfect_answerer_picks_the_held_out_like_and_dislike() -> None:
    prompts = _prompts([[10, 11, 12], [20, 21, 22, 23]])
    held_out = pl.DataFrame({"user_id": [1, 1, 2], "item_id": [12, 10, 99], "rating": [5.0, 2.0, 4.0]})
    perfect = oracle_answers(prompts, held_out, p=1.0)
    first = perfect.row(0, named=True)
    assert (first["like"], first["dislike"], first["like_true"], first["dislike_true"]) == (3, 1, True, True)
    assert first["like_hit"] and first["dislike_hit"] and first["key"] == content_key("prompt of user 1")
    second = perfect.row(1, named=True)  # no held-out candidate: a uniform pick, never informed
    assert not second["like_true"] and 1 <= second["like"] <= 4 and second["like"] != second["dislike"]
    assert not second["like_hit"]
    rates = candidate_base_rates(prompts, held_out)
    assert rates == {"like_base_rate": round(1 / 7, 4), "dislike_base_rate": round(1 / 7, 4)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_p_informs_that_share_of_the_answers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = [list(rng.choice(1000, size=10, replace=False) + 1) for _ in range(2000)]
    prompts = _prompts(items)
    held_out = pl.DataFrame({"user_id": list(range(1, 2001)) * 2,
                             "item_id": [i[0] for i in items] + [i[1] for i in items],
                             "rating": [5.0] * 2000 + [1.0] * 2000})
    for p in (0.0, 0.3, 0.8):
        answers = oracle_answers(prompts, held_out, p, seed=seed)
        assert abs(answers["like_true"].mean() - p) < 0.04, p
        assert (answers["like"] != answers["dislike"]).all()
        assert answers["like"].is_between(1, 10).all() and answers["dislike"].is_between(1, 10).all()
    uninformed = oracle_answers(prompts, held_out, 0.0, seed=seed)
    assert abs(uninformed["like_hit"].mean() - 0.1) < 0.03  # luck alone: one like among 10 candidates


def test_bad_plans_are_one_line_errors() -> None:
    for kwargs, needle in (({"ps": (1.5,)}, "every --p must lie in [0, 1]"), ({"holdout": 0.0}, "--holdout"),
                           ({"users": (0,)}, "every --users must be at least 1"),
                           ({"users_by": "densest"}, "unknown user order 'densest'"),
                           ({"method": "lightgcn"}, "not 'lightgcn'")):
        with pytest.raises(PngnnError, match=needle.replace("[", r"\[").replace("]", r"\]")) as info:
            WhatIfPlan(**{"dataset": "ml-100k", "seed": 1, "ps": (0.5,), "users": (10,), **kwargs})
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="p must lie in"):
        oracle_answers(_prompts([[1, 2]]), pl.DataFrame({"user_id": [], "item_id": [], "rating": []}), p=-0.1)


def test_the_server_answers_only_the_prompts_it_was_given() -> None:
    from pngnn.augment.client import LLMClient, Request
    from pngnn.augment.prompts import PROMPT_VERSION, messages

    prompts = _prompts([[10, 11, 12]])
    answers = oracle_answers(prompts, pl.DataFrame({"user_id": [1], "item_id": [11], "rating": [4.5]}), p=1.0)
    with OracleServer(answers, "oracle-test") as server:
        client = LLMClient(LLMSettings(model="oracle-test", base_url=server.base_url, max_attempts=1))
        client.check()
        known = client.process(Request("k1", messages("prompt of user 1"), 3, PROMPT_VERSION))
        unknown = client.process(Request("k2", messages("a prompt nobody decided"), 3, PROMPT_VERSION))
        client.close()
    assert known.status == "ok" and json.loads(known.raw_answer or "{}")["like"] == 2
    assert unknown.status != "ok" and server.requests >= 2


def _settings(tmp_path: Path, db: Path) -> Settings:
    return Settings(data_dir=Path("/nonexistent"), db_path=db, mlflow_uri=f"sqlite:///{tmp_path}/m.db")


def test_the_answerer_never_reads_test_rows(ml100k_db: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pngnn.app.whatif.ingest_step", lambda *a, **k: None)  # the copies are ingested already
    plan = WhatIfPlan("ml-100k", 1, (0.7,), (60,))
    decided = []
    for poison in (False, True):
        db = tmp_path / f"{poison}.duckdb"
        shutil.copyfile(ml100k_db, db)
        settings = _settings(tmp_path, db)
        with Store(db) as store:
            from pngnn.data.split import create_split

            create_split(store, "ml-100k", 1, valid_fraction=plan.holdout)
            if poison:  # every test rating flipped, and 20 test likes more for every user
                store.run_sql("UPDATE splits SET rating = 6 - rating WHERE dataset = 'ml-100k' AND part = 'test'")
                store.run_sql("INSERT INTO splits SELECT 'ml-100k', 1, u.user_id, i.item_id, 5.0, 'test' FROM "
                              "users u, (SELECT item_id FROM items WHERE dataset = 'ml-100k' LIMIT 20) i "
                              "WHERE u.dataset = 'ml-100k' AND NOT EXISTS (SELECT 1 FROM splits s WHERE "
                              "s.dataset = 'ml-100k' AND s.seed = 1 AND s.user_id = u.user_id AND "
                              "s.item_id = i.item_id)")
        hold_out(settings, plan)
        from pngnn.augment.step import pretrain_step

        pretrain_step(settings, "ml-100k", 1, 60, users_by="sparsest", candidate_config=TINY, progress=False)
        decided.append(decide_answers(settings, plan, 0.7, 60))
    (clean, clean_rates), (poisoned, poisoned_rates) = decided
    assert clean.equals(poisoned) and clean_rates == poisoned_rates
    assert clean["like_true"].sum() > 0  # the answerer did use what it knows


def test_whatif_sweep_through_the_real_augmentation_resumes(ml100k_db: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pngnn.app.whatif.ingest_step", lambda *a, **k: None)
    db = tmp_path / "whatif.duckdb"
    shutil.copyfile(ml100k_db, db)
    settings = _settings(tmp_path, db)
    plan = WhatIfPlan("ml-100k", 1, (0.0, 1.0), (80,))
    out = tmp_path / "sweep.json"
    record = run_whatif(settings, plan, TINY, out, echo=lambda _: None, candidate_config=TINY)
    assert set(record["baseline"]) >= {"recall@20", "users_sparsest10/recall@20"}
    cells = {c["p"]: c for c in record["cells"]}
    assert set(cells) == {0.0, 1.0} and all(c["users"] == 80 and c["prompts"] == 80 for c in cells.values())
    assert cells[1.0]["like_precision"] > cells[0.0]["like_precision"] + 0.1
    assert cells[1.0]["lift"]["recall@20"] == pytest.approx(
        cells[1.0]["metrics"]["recall@20"] - record["baseline"]["recall@20"], abs=1e-6)
    with Store(db) as store:  # the merged likes of the perfect answerer are held-out likes where it was informed
        right = store.scalar(
            "SELECT avg(CASE WHEN h.rating > 3.5 THEN 1 ELSE 0 END) FROM augmented_edges e "
            "LEFT JOIN held_out_ratings h "
            "ON h.dataset = e.dataset AND h.seed = e.seed AND h.user_id = e.user_id AND h.item_id = e.item_id "
            "WHERE e.model = 'oracle-p1.00-80' AND e.kind = 'positive'")
        assert store.scalar("SELECT count(*) FROM splits WHERE part = 'valid' AND seed = 1") == 0
    assert right >= cells[1.0]["like_precision"] - 0.05
    from pngnn.app.whatif import masked_held_out
    from pngnn.augment.edges import load_split_step

    masked = masked_held_out(settings, plan, load_split_step(settings, "ml-100k", 1))
    with Store(db) as store:
        held = store.scalar("SELECT count(*) FROM held_out_ratings WHERE dataset = 'ml-100k' AND seed = 1")
    assert len(masked.valid) == held > 0  # the answerer's items are masked when the models are evaluated
    assert json.loads(out.read_text()) == record

    def no_training(*a, **k):
        raise AssertionError("a finished sweep trains nothing again")

    monkeypatch.setattr("pngnn.app.whatif.train_evaluate_step", no_training)
    assert run_whatif(settings, plan, TINY, out, echo=lambda _: None, candidate_config=TINY) == record
    with pytest.raises(PngnnError, match="holds a what-if sweep of other settings"):
        run_whatif(settings, WhatIfPlan("ml-100k", 1, (0.5,), (80,), holdout=0.2), TINY, out, echo=lambda _: None)
    monkeypatch.undo()
    monkeypatch.setattr("pngnn.app.whatif.ingest_step", lambda *a, **k: None)
    likes_only = run_whatif(settings, WhatIfPlan("ml-100k", 1, (1.0,), (80,), dislikes=False), TINY,
                            tmp_path / "likes.json", echo=lambda _: None, candidate_config=TINY)["cells"][0]
    assert likes_only["edges_trained_on"] == likes_only["positive_edges"] == cells[1.0]["positive_edges"]
    assert cells[1.0]["edges_trained_on"] == cells[1.0]["positive_edges"] + cells[1.0]["negative_edges"]


def test_a_baseline_only_run_trains_pn_gnn_alone(ml100k_db: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pngnn.app.whatif.ingest_step", lambda *a, **k: None)
    db = tmp_path / "whatif.duckdb"
    shutil.copyfile(ml100k_db, db)

    def no_candidates(*a, **k):
        raise AssertionError("a baseline-only run asks no answerer, so it trains no candidate model")

    monkeypatch.setattr("pngnn.app.whatif.pretrain_step", no_candidates)
    out = tmp_path / "seed2.json"
    record = run_whatif(_settings(tmp_path, db), WhatIfPlan("ml-100k", 2, (1.0,), (80,)), TINY, out,
                        echo=lambda _: None, baseline_only=True)
    assert record["cells"] == [] and record["baseline"]["recall@20"] > 0
    assert json.loads(out.read_text()) == record


def test_a_one_split_sweep_is_read_against_the_spread_of_baseline_only_splits() -> None:
    from pngnn.app.whatif import split_spreads, sweep_table

    cell = {"p": 1.0, "users": 600, "like_precision": 0.4, "like_base_rate": 0.05,
            "lift": {"recall@20": 0.004, "users_sparsest10/recall@20": 0.001}}
    swept = {"seed": 1, "baseline": {"recall@20": 0.280, "users_sparsest10/recall@20": 0.30}, "cells": [cell]}
    alone = [{"seed": s, "baseline": {"recall@20": b, "users_sparsest10/recall@20": 0.30 + b - 0.28}, "cells": []}
             for s, b in ((2, 0.282), (3, 0.284))]
    assert np.isnan(split_spreads([swept])[0])  # one split: no spread to beat
    grid = {**swept, "cells": [{**cell, "users": u, "p": p} for u, p in ((0, 1.0), (2000, 0.5), (600, 1.0),
                                                                          (2000, 0.0))]}
    assert sweep_table([grid]).select("users", "p").rows() == [("600", 1.0), ("2000", 0.0), ("2000", 0.5),
                                                               ("all", 1.0)]
    alone_row = sweep_table([swept]).row(0, named=True)
    assert alone_row["recall@20 lift"] == "0.004" and alone_row["above spread (one split)"] == "-"
    assert split_spreads([swept, *alone]) == pytest.approx((0.002, 0.002))
    row = sweep_table([swept, *alone]).row(0, named=True)
    assert row["splits"] == 1 and row["users"] == "600"
    assert row["above spread 0.0020"] is True  # 0.004 > std(0.280, 0.282, 0.284) = 0.002
    assert row["above spread 0.0020 "] is False  # sparse: 0.001 < 0.002

    from pngnn.app.whatif import sweep_figure

    def spread_lines(spreads):
        fig = sweep_figure({**swept, "dataset": "ml-1m"}, spreads=spreads)
        return [[line.get_ydata()[0] for line in ax.get_lines() if line.get_label() == "PN-GNN split spread"]
                for ax in fig.axes]

    assert spread_lines(split_spreads([swept, *alone])) == [[pytest.approx(0.002)], [pytest.approx(0.002)]]
    assert spread_lines(split_spreads([swept])) == [[], []]  # none drawn where there is none


def test_sweep_table_compares_the_mean_lift_with_the_split_spread(tmp_path: Path) -> None:
    from pngnn.app.whatif import load_sweeps, sweep_table

    def record(seed: int, base: float, lift: float, sparse_lift: float) -> dict:
        cell = {"p": 1.0, "users": 0, "like_precision": 0.4, "like_base_rate": 0.05, "prompts": 6040,
                "lift": {"recall@20": lift, "users_sparsest10/recall@20": sparse_lift}}
        return {"seed": seed, "baseline": {"recall@20": base, "users_sparsest10/recall@20": 0.1 + seed / 10},
                "cells": [cell]}

    records = [record(1, 0.30, 0.02, 0.01), record(2, 0.31, 0.04, 0.03)]
    for r in records:
        path = tmp_path / "whatif" / "ml-100k" / "sparsest-graph" / f"seed{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    loaded = load_sweeps(tmp_path, "ml-100k")
    assert list(loaded) == ["sparsest-graph"] and len(loaded["sparsest-graph"]) == 2
    row = sweep_table(loaded["sparsest-graph"]).row(0, named=True)
    assert row["users"] == "all" and row["splits"] == 2
    assert row["recall@20 lift"] == "0.03 ± 0.0141"
    assert row["above spread 0.0071"] is True  # 0.03 > std(0.30, 0.31) = 0.0071
    assert row["above spread 0.0707 "] is False  # sparse: 0.02 < std(0.2, 0.3) = 0.0707
    from pngnn.augment.usage import Price

    priced = sweep_table(loaded["sparsest-graph"], price=Price(0.5, 1000)).row(0, named=True)
    # 6,040 prompts x 1,000 tokens at 0.5 USD a million: 3.02 USD; the mean lift 0.03 is 30 x 0.001
    assert (priced["prompts"], priced["cost USD"], priced["USD per 0.001 recall@20"]) == (6040, 3.02, "0.10")
    for r in records:
        r["cells"][0]["lift"]["recall@20"] = -0.01
    assert sweep_table(records, price=Price(0.5, 1000)).row(0, named=True)["USD per 0.001 recall@20"] == "-"
    with pytest.raises(PngnnError, match="positive price"):
        Price(0.0, 1000)
    with pytest.raises(PngnnError, match="no what-if sweeps for ml-1m"):
        load_sweeps(tmp_path, "ml-1m")


@pytest.mark.parametrize("method", ["pn-ease", "weighted-ease"])
def test_a_closed_form_sweep_compares_the_model_with_its_llm_variant(method: str, ml100k_db: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """The same sweep with a closed form: the baseline is PN-EASE (or weighted-ease) on the what-if
    train part, each cell its llm- variant on it plus the answerer's edges (likes as liked input,
    dislikes as disliked input), and the record says which model it compared."""
    from pngnn.app.whatif import masked_held_out
    from pngnn.augment.edges import load_split_step
    from pngnn.training.outcome import train_evaluate_step

    monkeypatch.setattr("pngnn.app.whatif.ingest_step", lambda *a, **k: None)
    db = tmp_path / "whatif.duckdb"
    shutil.copyfile(ml100k_db, db)
    settings = _settings(tmp_path, db)
    plan = WhatIfPlan("ml-100k", 1, (1.0,), (80,), method=method)
    cfg = TINY.with_overrides(ease_lambda=200.0, disliked_input=0.5)
    record = run_whatif(settings, plan, cfg, tmp_path / f"{method}.json", echo=lambda _: None,
                        candidate_config=TINY)
    assert record["method"] == method
    split = masked_held_out(settings, plan, load_split_step(settings, "ml-100k", 1))
    assert record["baseline"] == train_evaluate_step(split, method, cfg, progress=False).metrics
    (cell,) = record["cells"]
    assert cell["edges_trained_on"] == cell["positive_edges"] + cell["negative_edges"] > 0
    assert cell["metrics"] != record["baseline"]  # the edges changed the model
    assert cell["lift"]["recall@20"] == pytest.approx(cell["metrics"]["recall@20"] - record["baseline"]["recall@20"],
                                                      abs=1e-6)
