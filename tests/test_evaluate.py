"""Full-ranking evaluation on a hand-made case with a fixed score matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pngnn.data.split import Interactions
from pngnn.evaluation.evaluate import evaluate, top_k_hits

N_ITEMS = 6

# Fixed scores, one row per user (3 users x 6 items).
SCORES = torch.tensor(
    [
        [10.0, 9.0, 8.0, 7.0, 6.0, 5.0],  # user 0: train item 0 has the highest score
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # user 1: no test rating above 3.5 -> skipped
        [2.0, 3.0, 1.0, 0.0, -1.0, 100.0],  # user 2: train item 5 has the highest score
    ]
)


def inter(rows: list[tuple[int, int, float]]) -> Interactions:
    return Interactions(
        np.array([u for u, _, _ in rows], dtype=np.int64),
        np.array([i for _, i, _ in rows], dtype=np.int64),
        np.array([r for _, _, r in rows], dtype=np.float32),
    )


# train (seen) items: user 0 -> 0; user 1 -> 0; user 2 -> 5
TRAIN = inter([(0, 0, 5.0), (1, 0, 4.0), (2, 5, 2.0)])
# test: user 0 liked items 2 (5) and 4 (4), watched item 1 (3: not ground truth)
#       user 1 only has ratings at or below 3.5 (3.5 itself is not above the threshold)
#       user 2 liked item 1 (4)
TEST = inter([(0, 1, 3.0), (0, 2, 5.0), (0, 4, 4.0), (1, 3, 2.0), (1, 5, 3.5), (2, 1, 4.0)])


class Scorer:
    """score_fn that records which users it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        self.calls.append(users.tolist())
        return SCORES[users]


def d(rank: int) -> float:
    return 1.0 / math.log2(rank + 2)


def expected_metrics() -> dict[str, float]:
    # After masking train items:
    #   user 0 ranks 1, 2, 3, 4, 5 -> top 3 = [1, 2, 3], hits [0, 1, 0], 2 relevant (items 2, 4)
    #   user 2 ranks 1, 0, 2, 3, 4 -> top 3 = [1, 0, 2], hits [1, 0, 0], 1 relevant (item 1)
    u0_ndcg = d(1) / (d(0) + d(1))  # one hit at rank 1; ideal: 2 hits at ranks 0, 1
    return {
        "precision@1": (0 / 1 + 1 / 1) / 2,
        "precision@2": (1 / 2 + 1 / 2) / 2,
        "precision@3": (1 / 3 + 1 / 3) / 2,
        "recall@1": (0 / 2 + 1 / 1) / 2,
        "recall@2": (1 / 2 + 1 / 1) / 2,
        "recall@3": (1 / 2 + 1 / 1) / 2,
        "ndcg@1": (0.0 + 1.0) / 2,
        "ndcg@2": (u0_ndcg + 1.0) / 2,
        "ndcg@3": (u0_ndcg + 1.0) / 2,  # the ideal list for user 0 still has 2 hits
        "n_eval_users": 2.0,
    }


@pytest.mark.parametrize("block", [2048, 1])
def test_evaluate_hand_computed(block):
    scorer = Scorer()
    got = evaluate(scorer, N_ITEMS, TRAIN, TEST, threshold=3.5, ks=(3, 1, 2), block=block)
    want = expected_metrics()
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    # only users with a test rating above 3.5 were scored
    assert sorted(u for call in scorer.calls for u in call) == [0, 2]


def test_train_items_masked_and_low_ratings_not_truth():
    users = np.array([0, 2])
    truth = TEST.select(TEST.ratings > 3.5)
    tops, hits, n_rel = top_k_hits(Scorer(), users, N_ITEMS, TRAIN, truth, k=3)
    np.testing.assert_array_equal(tops, [[1, 2, 3], [1, 0, 2]])
    assert 0 not in tops[0] and 5 not in tops[1]  # the highest-scored items were train items
    np.testing.assert_array_equal(hits, [[False, True, False], [True, False, False]])
    np.testing.assert_array_equal(n_rel, [2, 1])


def test_masked_items_never_appear_even_at_full_length():
    # k = 5 = every unseen item of user 0: the masked item 0 must not be in the list
    truth = TEST.select(TEST.ratings > 3.5)
    tops, _, _ = top_k_hits(Scorer(), np.array([0]), N_ITEMS, TRAIN, truth, k=5)
    assert sorted(tops[0].tolist()) == [1, 2, 3, 4, 5]


def test_threshold_changes_ground_truth():
    # threshold 2.5:
    #   user 0 truth = {1, 2, 4} (3 > 2.5 now counts); top 3 = [1, 2, 3] -> hits [1, 1, 0]
    #   user 1 truth = {5} (3.5 > 2.5, 2.0 is not); ranks after masking item 0: 5, 4, 3 -> hits [1, 0, 0]
    #   user 2 as before: top 3 = [1, 0, 2] -> hits [1, 0, 0], truth = {1}
    got = evaluate(Scorer(), N_ITEMS, TRAIN, TEST, threshold=2.5, ks=(3,))
    assert got["n_eval_users"] == 3.0
    # precision@3: user 0 2/3, user 1 1/3, user 2 1/3
    assert got["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    # recall@3: user 0 2/3, user 1 1/1, user 2 1/1
    assert got["recall@3"] == pytest.approx((2 / 3 + 1 + 1) / 3)


def test_no_ground_truth_raises():
    with pytest.raises(ValueError, match="no test rating above"):
        evaluate(Scorer(), N_ITEMS, TRAIN, inter([(0, 1, 1.0)]), ks=(1,))


def test_an_evaluation_propagates_the_graph_once_however_many_blocks(ml100k_split):
    """Ranking every user in blocks of 100 must not propagate the graph once a block."""
    from pngnn.core.config import TrainConfig
    from pngnn.training.train import build_lightgcn

    model = build_lightgcn(ml100k_split, TrainConfig(dim=8, layers=2))
    calls = []
    propagate = model.embeddings
    model.embeddings = lambda: calls.append(1) or propagate()
    metrics = evaluate(model.scorer(), ml100k_split.n_items, ml100k_split.train, ml100k_split.test, block=100)
    assert len(calls) == 1 and metrics["n_eval_users"] > 100
    block = evaluate(model.full_sort_predict, ml100k_split.n_items, ml100k_split.train, ml100k_split.test, block=100)
    assert len(calls) > 2  # the per-block path propagates again and again ...
    assert block == pytest.approx(metrics)  # ... for the same numbers
