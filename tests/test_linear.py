"""EASE and PN-EASE against direct solves of their regressions, and their scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions, SplitData
from pngnn.models.linear import ItemLinear, fit_ease, fit_pn_ease, pn_inputs
from pngnn.training.methods import train_method

# 5 users x 4 items; 0 = unrated. Ratings > 3.5 are liked.
RATINGS = np.array([
    [5, 4, 0, 1],
    [4, 0, 2, 5],
    [0, 5, 4, 0],
    [2, 4, 5, 3],
    [5, 0, 1, 4],
], dtype=np.float32)


def interactions(matrix: np.ndarray) -> Interactions:
    users, items = np.nonzero(matrix)
    return Interactions(users.astype(np.int64), items.astype(np.int64), matrix[users, items].astype(np.float32))


def ridge_without(x: np.ndarray, target: np.ndarray, dropped: list[int], lam: float) -> np.ndarray:
    """Solve min ||target - X_S b||² + lam ||b||² over the columns S not in ``dropped``; 0 on the dropped rows."""
    keep = [c for c in range(x.shape[1]) if c not in dropped]
    xs = x[:, keep]
    b = np.linalg.solve(xs.T @ xs + lam * np.eye(len(keep)), xs.T @ target)
    out = np.zeros(x.shape[1])
    out[keep] = b
    return out


def dense_weights(model: ItemLinear) -> np.ndarray:
    return model.weights.double().numpy()


@pytest.mark.parametrize(("ratings", "lam"), [("all", 0.5), ("liked", 2.0)])
def test_ease_equals_one_ridge_regression_per_item_without_itself(ratings, lam):
    train = interactions(RATINGS)
    model = fit_ease(train, 5, 4, lam, ratings)
    x = ((RATINGS > 0) if ratings == "all" else (RATINGS > 3.5)).astype(np.float64)
    expected = np.stack([ridge_without(x, x[:, j], [j], lam) for j in range(4)], axis=1)
    np.testing.assert_allclose(dense_weights(model), expected, atol=1e-5)
    assert np.all(np.diag(dense_weights(model)) == 0)


def test_pn_ease_holds_both_columns_of_an_item_out_of_its_own_regression():
    lam, w, gamma = 0.7, 0.5, 0.3
    train = interactions(RATINGS)
    model = fit_pn_ease(train, 5, 4, lam, disliked_input=w, disliked_score=gamma)
    liked = (RATINGS > 3.5).astype(np.float64)
    disliked = ((RATINGS > 0) & (RATINGS <= 3.5)).astype(np.float64)
    x2 = np.hstack([liked, w * disliked])  # the inputs by hand: [L, w D]
    expected = np.zeros((8, 4))
    for j in range(4):
        b_liked = ridge_without(x2, x2[:, j], [j, 4 + j], lam)
        b_disliked = ridge_without(x2, x2[:, 4 + j], [j, 4 + j], lam)
        expected[:, j] = b_liked + gamma / w * b_disliked
    np.testing.assert_allclose(dense_weights(model), expected, atol=1e-5)


def test_item_linear_scores_any_subset_of_users_as_x_times_w():
    train = interactions(RATINGS)
    model = fit_pn_ease(train, 5, 4, 1.0, disliked_input=2.0, disliked_score=-0.5)
    x = pn_inputs(train, 4, 2.0, 3.5)
    dense_x = np.zeros((5, 8))
    dense_x[x.users, x.items] = x.ratings
    users = torch.tensor([3, 0, 4])
    expected = dense_x[[3, 0, 4]] @ dense_weights(model)
    np.testing.assert_allclose(model.full_sort_predict(users).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ease_ranks_the_item_that_co_occurs_first():
    # Users 0-3 watched items 0 and 1 together, item 2 with 3; user 4 watched only item 0.
    rows = [(u, i, 5.0) for u in range(4) for i in (0, 1)] + [(u, i, 5.0) for u in range(4, 8) for i in (2, 3)]
    rows.append((8, 0, 5.0))
    users, items, ratings = (np.array(c) for c in zip(*rows, strict=True))
    train = Interactions(users.astype(np.int64), items.astype(np.int64), ratings.astype(np.float32))
    scores = fit_ease(train, 9, 4, 1.0).full_sort_predict(torch.tensor([8]))[0]
    assert int(torch.argsort(scores[1:], descending=True)[0]) + 1 == 1


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"ease_lambda": 0.0}, "ease_lambda=0.0 must be > 0"),
        ({"ease_lambda": -5.0}, "ease_lambda=-5.0 must be > 0"),
        ({"disliked_input": 0.0}, "disliked_input=0.0 must be > 0"),
        ({"ease_ratings": "some"}, "unknown ease_ratings 'some'"),
        ({"ials_ratings": "most"}, "unknown ials_ratings 'most'"),
        ({"valid_metric": "mrr@10"}, "unknown validation metric 'mrr@10'"),
    ],
)
def test_bad_closed_form_settings_are_one_line_errors(settings, needle):
    with pytest.raises(PngnnError, match=needle):
        TrainConfig(**settings)


def test_gram_inverse_rejects_a_non_positive_lambda_directly():
    with pytest.raises(PngnnError, match="lambda must be > 0"):
        fit_ease(interactions(RATINGS), 5, 4, 0.0)


def test_ease_and_pn_ease_through_the_method_table_rank_unseen_items():
    train = interactions(RATINGS)
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("tiny", 1, 5, 4, train, empty, empty)
    for method in ("ease", "pn-ease"):
        result = train_method(method, split, TrainConfig(ease_lambda=1.0), progress=False)
        assert result.history == [] and result.seconds >= 0
        assert result.model.full_sort_predict(torch.arange(5)).shape == (5, 4)


def test_llm_pn_ease_is_pn_ease_on_train_plus_the_edges(ml100k_split):
    """A like joins the liked input and a dislike the disliked one: the same fit as PN-EASE on a
    train part that holds the edges as ratings."""
    rng = np.random.default_rng(3)
    users = rng.integers(0, ml100k_split.n_users, 200)
    likes = Interactions(users[:100], rng.integers(0, ml100k_split.n_items, 100), np.full(100, 5.0, np.float32))
    dislikes = Interactions(users[100:], rng.integers(0, ml100k_split.n_items, 100), np.full(100, 1.0, np.float32))
    cfg = TrainConfig(ease_lambda=300.0)
    augmented = ml100k_split.with_augmented(likes, dislikes)
    llm = train_method("llm-pn-ease", augmented, cfg, progress=False).model
    by_hand = fit_pn_ease(ml100k_split.train.concat(likes, dislikes), ml100k_split.n_users, ml100k_split.n_items,
                          300.0, cfg.disliked_input, cfg.disliked_score, dropout=cfg.pn_dropout)
    plain = train_method("pn-ease", ml100k_split, cfg, progress=False).model
    torch.testing.assert_close(llm.weights, by_hand.weights)
    assert not torch.allclose(llm.weights, plain.weights)


def test_llm_weighted_ease_is_weighted_ease_on_train_plus_the_edges(ml100k_split):
    """A like enters X as 1 and a dislike as w: weighted-ease on a train part holding the edges."""
    from pngnn.models.linear import fit_weighted_ease

    rng = np.random.default_rng(4)
    users = rng.integers(0, ml100k_split.n_users, 200)
    likes = Interactions(users[:100], rng.integers(0, ml100k_split.n_items, 100), np.full(100, 5.0, np.float32))
    dislikes = Interactions(users[100:], rng.integers(0, ml100k_split.n_items, 100), np.full(100, 1.0, np.float32))
    cfg = TrainConfig(ease_lambda=300.0, disliked_input=0.4, pn_dropout=0.25)
    llm = train_method("llm-weighted-ease", ml100k_split.with_augmented(likes, dislikes), cfg, progress=False).model
    by_hand = fit_weighted_ease(ml100k_split.train.concat(likes, dislikes), ml100k_split.n_users,
                                ml100k_split.n_items, 300.0, 0.4, dropout=0.25)
    plain = train_method("weighted-ease", ml100k_split, cfg, progress=False).model
    torch.testing.assert_close(llm.weights, by_hand.weights)
    assert not torch.allclose(llm.weights, plain.weights)
