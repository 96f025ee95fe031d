"""Top-K metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pngnn.evaluation.metrics import aggregate, ndcg_at_k, precision_at_k, ranking_metrics, recall_at_k

# Two users, ranked lists of 5.
#   user 0: hits at ranks 0 and 2, 2 relevant items in total (fewer than k=5)
#   user 1: hits at ranks 3 and 4, 7 relevant items in total (more than k=5)
HITS = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 1, 1],
    ],
    dtype=bool,
)
N_REL = np.array([2, 7])


def d(rank: int) -> float:
    """Discount of the 0-based rank r: 1 / log2(r + 2)."""
    return 1.0 / math.log2(rank + 2)


def test_precision_at_k():
    # k=5: user 0 has 2 hits -> 2/5, user 1 has 2 hits -> 2/5
    np.testing.assert_allclose(precision_at_k(HITS, 5), [2 / 5, 2 / 5])
    # k=3: user 0 hits at ranks 0, 2 -> 2/3; user 1 no hit in the first 3 -> 0
    np.testing.assert_allclose(precision_at_k(HITS, 3), [2 / 3, 0.0])
    # k=1: user 0 hit at rank 0 -> 1; user 1 -> 0
    np.testing.assert_allclose(precision_at_k(HITS, 1), [1.0, 0.0])


def test_recall_at_k():
    # k=5: user 0 2 of 2 -> 1; user 1 2 of 7
    np.testing.assert_allclose(recall_at_k(HITS, N_REL, 5), [1.0, 2 / 7])
    # k=2: user 0 1 of 2 -> 0.5; user 1 0 of 7
    np.testing.assert_allclose(recall_at_k(HITS, N_REL, 2), [0.5, 0.0])


def test_ndcg_n_relevant_smaller_and_larger_than_k():
    # user 0, k=5, n_relevant=2 < k: DCG = d(0) + d(2) = 1 + 1/log2(4) = 1.5
    #   IDCG = d(0) + d(1) = 1 + 1/log2(3)  (ideal list has only 2 hits)
    u0 = (d(0) + d(2)) / (d(0) + d(1))
    # user 1, k=5, n_relevant=7 > k: DCG = d(3) + d(4) = 1/log2(5) + 1/log2(6)
    #   IDCG = d(0)+...+d(4)  (ideal list is full: min(7, 5) = 5 hits)
    u1 = (d(3) + d(4)) / sum(d(r) for r in range(5))
    np.testing.assert_allclose(ndcg_at_k(HITS, N_REL, 5), [u0, u1])
    # sanity of the arithmetic: 1.5 / (1 + 0.6309...) = 0.9197...
    assert u0 == pytest.approx(1.5 / (1 + 1 / math.log2(3)))


def test_ndcg_at_smaller_k_truncates_both_dcg_and_idcg():
    # k=3, user 0: DCG = d(0) + d(2); IDCG = d(0) + d(1) (min(2, 3) = 2)
    # k=3, user 1: no hit in the top 3 -> 0; IDCG = d(0)+d(1)+d(2) (min(7, 3) = 3) is irrelevant
    np.testing.assert_allclose(ndcg_at_k(HITS, N_REL, 3), [(d(0) + d(2)) / (d(0) + d(1)), 0.0])
    # k=1, user 0: DCG = d(0) = 1 = IDCG -> 1
    np.testing.assert_allclose(ndcg_at_k(HITS, N_REL, 1), [1.0, 0.0])


def test_ndcg_perfect_ranking_is_one():
    # all 3 relevant items on top: DCG = IDCG
    hits = np.array([[1, 1, 1, 0, 0]], dtype=bool)
    np.testing.assert_allclose(ndcg_at_k(hits, np.array([3]), 5), [1.0])
    # the same list with 4 relevant items: IDCG adds d(3), so NDCG < 1
    expected = (d(0) + d(1) + d(2)) / (d(0) + d(1) + d(2) + d(3))
    np.testing.assert_allclose(ndcg_at_k(hits, np.array([4]), 5), [expected])


def test_ranking_metrics_means_over_users():
    out = ranking_metrics(HITS, N_REL, [3, 5])
    assert set(out) == {f"{m}@{k}" for m in ("precision", "recall", "ndcg") for k in (3, 5)}
    # precision@3 = mean(2/3, 0); recall@5 = mean(1, 2/7)
    assert out["precision@3"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert out["precision@5"] == pytest.approx((2 / 5 + 2 / 5) / 2)
    assert out["recall@3"] == pytest.approx((2 / 2 + 0 / 7) / 2)
    assert out["recall@5"] == pytest.approx((1.0 + 2 / 7) / 2)
    u0 = (d(0) + d(2)) / (d(0) + d(1))
    u1 = (d(3) + d(4)) / sum(d(r) for r in range(5))
    assert out["ndcg@5"] == pytest.approx((u0 + u1) / 2)


@pytest.mark.parametrize("k", [0, -1, 6])
def test_bad_k_raises(k):
    with pytest.raises(ValueError, match="k="):
        precision_at_k(HITS, k)
    with pytest.raises(ValueError, match="k="):
        recall_at_k(HITS, N_REL, k)
    with pytest.raises(ValueError, match="k="):
        ndcg_at_k(HITS, N_REL, k)


def test_aggregate_mean_and_sample_std():
    runs = [
        {"precision@10": 0.1, "recall@10": 0.5},
        {"precision@10": 0.3, "recall@10": 0.5},
        {"precision@10": 0.2, "recall@10": 0.8},
    ]
    out = aggregate(runs)
    # precision: mean 0.2; deviations -0.1, 0.1, 0 -> sum of squares 0.02; / (3 - 1) = 0.01 -> std 0.1
    assert out["precision@10"][0] == pytest.approx(0.2)
    assert out["precision@10"][1] == pytest.approx(0.1)
    # recall: mean 1.8 / 3 = 0.6; deviations -0.1, -0.1, 0.2 -> 0.01 + 0.01 + 0.04 = 0.06; / 2 = 0.03
    assert out["recall@10"][0] == pytest.approx(0.6)
    assert out["recall@10"][1] == pytest.approx(math.sqrt(0.03))


def test_aggregate_single_run_has_zero_std_and_empty_raises():
    assert aggregate([{"ndcg@5": 0.42}]) == {"ndcg@5": (pytest.approx(0.42), 0.0)}
    with pytest.raises(ValueError):
        aggregate([])
