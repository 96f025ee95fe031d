"""Metrics by segment (users by activity, long-tail items) on a hand-made case, and their
consistency with the overall metrics on a real evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pngnn.evaluation.evaluate import evaluate
from pngnn.evaluation.segments import long_tail_items, segment_metrics, user_buckets
from pngnn.training.methods import seen_items


def test_buckets_cut_by_train_activity_with_ties_by_user():
    users = np.arange(8)
    degree = np.array([5, 1, 3, 2, 3, 9, 1, 4])
    buckets = user_buckets(users, degree)
    # ordered by (degree, user): 1, 6 | 3, 2 | 4, 7 | 0, 5
    assert users[buckets["users_q1"]].tolist() == [1, 6]
    assert users[buckets["users_q2"]].tolist() == [2, 3]
    assert users[buckets["users_q3"]].tolist() == [4, 7]
    assert users[buckets["users_q4"]].tolist() == [0, 5]
    assert users[buckets["users_sparsest10"]].tolist() == [1]  # ceil(10% of 8) = 1 user


def test_segment_metrics_hand_computed():
    users = np.array([0, 1, 2, 3])
    user_degree = np.array([5, 1, 3, 2])  # activity order: user 1, 3, 2, 0 -> one user a quartile
    item_degree = np.array([9, 1, 7, 2, 3])  # head (top 20% of 5 items): item 0; the tail: 1-4
    top = np.array([[0, 2], [1, 3], [2, 4], [4, 0]])
    truth_users, truth_items = np.array([0, 0, 1, 2, 3]), np.array([0, 2, 3, 1, 0])
    hits = np.array([[True, True], [False, True], [False, False], [False, True]])
    n_relevant = np.array([2, 1, 1, 1])
    out = segment_metrics(users, top, hits, n_relevant, truth_users, truth_items, user_degree, item_degree, [1, 2])

    q1 = out["users_q1"]  # user 1 alone
    assert q1["n_users"] == 1 and q1["precision@1"] == 0 and q1["precision@2"] == 0.5
    assert q1["recall@2"] == 1 and q1["ndcg@2"] == pytest.approx(1 / math.log2(3))
    q4 = out["users_q4"]  # user 0: both relevant items at ranks 1 and 2
    assert q4["precision@2"] == 1 and q4["recall@1"] == 0.5 and q4["ndcg@2"] == pytest.approx(1.0)
    assert out["users_q2"]["recall@2"] == 1 and out["users_q3"]["recall@2"] == 0  # users 3 and 2
    assert out["users_sparsest10"]["n_users"] == 1 and out["users_sparsest10"] == q1
    # long tail: users 0, 1, 2 have a relevant tail item (2, 3, 1); user 3's only one (item 0) is head.
    # Tail hits at rank 2 for users 0 and 1, none for user 2: recall@2 = (1 + 1 + 0) / 3.
    assert out["long_tail"] == {"recall@1": 0.0, "recall@2": pytest.approx(2 / 3), "n_users": 3.0}


def test_long_tail_is_everything_outside_the_top_fifth():
    degree = np.array([3, 10, 10, 1, 0, 7, 2, 2, 9, 4])
    assert np.flatnonzero(~long_tail_items(degree)).tolist() == [1, 2]  # 20% of 10: the two most rated


def test_quartiles_partition_the_evaluated_users_and_average_back_to_the_overall(ml100k_split, ml100k_lightgcn):
    split, model = ml100k_split, ml100k_lightgcn
    flat = evaluate(model.scorer(), split.n_items, seen_items(split), split.test, segments=True)
    overall = evaluate(model.scorer(), split.n_items, seen_items(split), split.test)
    assert {k: v for k, v in flat.items() if "/" not in k} == overall
    by_segment: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        if "/" in key:
            name, metric = key.split("/")
            by_segment.setdefault(name, {})[metric] = value
    assert set(by_segment) == {"users_q1", "users_q2", "users_q3", "users_q4", "users_sparsest10", "long_tail"}
    quartiles = [by_segment[f"users_q{q}"] for q in range(1, 5)]
    assert sum(q["n_users"] for q in quartiles) == overall["n_eval_users"]
    for name in ("precision@10", "recall@20", "ndcg@20"):
        weighted = sum(q[name] * q["n_users"] for q in quartiles) / overall["n_eval_users"]
        assert weighted == pytest.approx(overall[name], rel=1e-9)
    # Heavy users have more relevant test items, so their precision is higher: the buckets differ.
    assert by_segment["users_q4"]["precision@10"] > by_segment["users_q1"]["precision@10"]
    assert by_segment["users_sparsest10"]["n_users"] == math.ceil(0.1 * overall["n_eval_users"])
    assert 0 <= by_segment["long_tail"]["recall@20"] < overall["recall@20"]


def test_every_evaluated_run_records_its_segments(ml100k_split):
    from pngnn.core.config import TrainConfig
    from pngnn.evaluation.metrics import aggregate
    from pngnn.training.outcome import train_evaluate_step

    record = train_evaluate_step(ml100k_split, "mostpop", TrainConfig()).record()
    wanted = {f"{s}/recall@20" for s in ("users_q1", "users_q4", "users_sparsest10", "long_tail")}
    assert wanted <= set(record["metrics"])
    # a record written before the segments existed still aggregates with a new one, on what both have
    old = {k: v for k, v in record["metrics"].items() if "/" not in k}
    assert set(aggregate([record["metrics"], old])) == set(old)
