"""PN-EASE's two candidate forms (issue 31 item 2) against their formulas computed directly in
float64: PN-EDLAE (PN-EASE with EDLAE's dropout ridge on its 2n inputs) and weighted-input EASE
(one regression on X = L + w·D)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pngnn.app.study import GRIDS, grid_points
from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions, SplitData
from pngnn.models.linear import fit_ease, fit_pn_ease, fit_weighted_ease
from pngnn.training.methods import METHOD_SETTINGS, train_method

F64 = np.dtype(np.float64)


def rated_log(n_users: int = 60, n_items: int = 10, seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """A random log with ratings 1-5 (about a third of the cells rated), every item rated once."""
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float32)
    ratings[rng.random((n_users, n_items)) > 0.35] = 0
    ratings[0, :] = 4.0
    users, items = np.nonzero(ratings)
    return Interactions(users, items, ratings[users, items]), ratings


def weights_of(model) -> np.ndarray:
    return model.weights.numpy().astype(np.float64)


@pytest.mark.parametrize(("dropout", "w", "gamma"), [(0.25, 1.0, 0.25), (0.6, 0.5, -0.5)])
def test_pn_edlae_is_the_block_closed_form_with_the_dropout_ridge(dropout, w, gamma):
    """B = I - P blockdiag_j(P[S_j, S_j])⁻¹, P = (X₂ᵀX₂ + p/(1-p) diag(X₂ᵀX₂) + λI)⁻¹, scored
    B[:, L] + γ/w B[:, D]."""
    train, ratings = rated_log()
    n, lam = ratings.shape[1], 4.0
    x2 = np.hstack([(ratings > 3.5), w * ((ratings > 0) & (ratings <= 3.5))]).astype(np.float64)
    g = x2.T @ x2
    p = np.linalg.inv(g + np.diag(dropout / (1 - dropout) * np.diag(g)) + lam * np.eye(2 * n))
    b = np.eye(2 * n)
    for j in range(n):
        s = [j, n + j]
        b[:, s] -= p[:, s] @ np.linalg.inv(p[np.ix_(s, s)])
    expected = b[:, :n] + gamma / w * b[:, n:]
    model = fit_pn_ease(train, ratings.shape[0], n, lam, w, gamma, dtype=F64, dropout=dropout)
    np.testing.assert_allclose(weights_of(model), expected, rtol=1e-6, atol=1e-7)


def test_pn_edlae_without_dropout_is_pn_ease_and_with_it_differs():
    train, ratings = rated_log(seed=1)
    plain = weights_of(fit_pn_ease(train, ratings.shape[0], ratings.shape[1], 3.0, dtype=F64))
    zero = weights_of(fit_pn_ease(train, ratings.shape[0], ratings.shape[1], 3.0, dtype=F64, dropout=0.0))
    denoised = weights_of(fit_pn_ease(train, ratings.shape[0], ratings.shape[1], 3.0, dtype=F64, dropout=0.3))
    np.testing.assert_array_equal(zero, plain)
    assert np.abs(denoised - plain).max() > 1e-3


@pytest.mark.parametrize("w", [0.25, 0.7])
def test_weighted_ease_is_ease_on_liked_plus_w_times_disliked(w):
    train, ratings = rated_log(seed=2)
    lam = 2.5
    x = np.where(ratings > 3.5, 1.0, np.where(ratings > 0, w, 0.0))
    g = x.T @ x
    p = np.linalg.inv(g + lam * np.eye(len(g)))
    expected = np.eye(len(g)) - p / np.diag(p)
    model = fit_weighted_ease(train, ratings.shape[0], ratings.shape[1], lam, w, dtype=F64)
    np.testing.assert_allclose(weights_of(model), expected, rtol=1e-6, atol=1e-7)
    # it scores the same weighted rows it was fitted on
    users = torch.tensor([5, 0, 17])
    np.testing.assert_allclose(model.full_sort_predict(users).numpy(), x[[5, 0, 17]] @ expected, rtol=1e-5, atol=1e-6)


def test_weighted_edlae_is_the_weighted_input_with_the_dropout_ridge():
    train, ratings = rated_log(seed=5)
    lam, w, dropout = 3.0, 0.4, 0.3
    x = np.where(ratings > 3.5, 1.0, np.where(ratings > 0, w, 0.0))
    g = x.T @ x
    p = np.linalg.inv(g + np.diag(dropout / (1 - dropout) * np.diag(g)) + lam * np.eye(len(g)))
    expected = np.eye(len(g)) - p / np.diag(p)
    model = fit_weighted_ease(train, *ratings.shape, lam, w, dtype=F64, dropout=dropout)
    np.testing.assert_allclose(weights_of(model), expected, rtol=1e-6, atol=1e-7)


def test_weighted_ease_spans_ease_on_every_rating_and_on_the_liked_ones():
    train, ratings = rated_log(seed=3)
    m, n = ratings.shape
    every = fit_weighted_ease(train, m, n, 5.0, 1.0, dtype=F64)
    np.testing.assert_allclose(weights_of(every), weights_of(fit_ease(train, m, n, 5.0, "all", dtype=F64)), atol=1e-9)
    users = torch.arange(m)
    almost_liked = fit_weighted_ease(train, m, n, 5.0, 1e-6, dtype=F64).full_sort_predict(users).numpy()
    liked = fit_ease(train, m, n, 5.0, "liked", dtype=F64).full_sort_predict(users).numpy()
    np.testing.assert_allclose(almost_liked, liked, atol=1e-4)


def test_both_forms_train_through_the_method_table_with_their_settings():
    train, ratings = rated_log(seed=4)
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("tiny", 1, ratings.shape[0], ratings.shape[1], train, empty, empty)
    cfg = TrainConfig(ease_lambda=2.0, disliked_input=0.5, disliked_score=0.25, pn_dropout=0.25)
    direct = fit_pn_ease(train, *ratings.shape, 2.0, 0.5, 0.25, dropout=0.25)
    np.testing.assert_allclose(train_method("pn-ease", split, cfg, progress=False).model.weights.numpy(),
                               direct.weights.numpy(), rtol=1e-5, atol=1e-6)
    weighted = train_method("weighted-ease", split, cfg, progress=False).model
    direct_weighted = fit_weighted_ease(train, *ratings.shape, 2.0, 0.5, dropout=0.25)
    np.testing.assert_allclose(weighted.weights.numpy(), direct_weighted.weights.numpy(), rtol=1e-5, atol=1e-6)
    assert "pn_dropout" in METHOD_SETTINGS["pn-ease"] and "pn_dropout" not in METHOD_SETTINGS["ease"]
    assert {"disliked_input", "pn_dropout"} <= set(METHOD_SETTINGS["weighted-ease"])


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan")])
def test_a_dropout_outside_zero_to_one_is_one_line(value):
    with pytest.raises(PngnnError, match=r"pn_dropout=.* must lie in \[0, 1\)"):
        TrainConfig(pn_dropout=value)
    with pytest.raises(PngnnError, match="dropout probability must lie in"):
        fit_pn_ease(rated_log()[0], 60, 10, 1.0, dropout=value)
    with pytest.raises(PngnnError, match="dropout probability must lie in"):
        fit_weighted_ease(rated_log()[0], 60, 10, 1.0, 0.5, dropout=value)


def test_the_grids_hold_both_forms_and_share_inversions_where_only_the_score_moves():
    points = grid_points("pn-ease")
    assert len(points) == np.prod([len(v) for v in GRIDS["pn-ease"].values()])
    assert {p["pn_dropout"] for p in points} == {0.0, 0.25, 0.5}
    # consecutive points that differ only in disliked_score share (dropout, lambda, w): one inversion each
    inversions = {(p["pn_dropout"], p["ease_lambda"], p["disliked_input"]) for p in points}
    changes = sum(1 for a, b in itertools.pairwise(points)
                  if (a["pn_dropout"], a["ease_lambda"], a["disliked_input"])
                  != (b["pn_dropout"], b["ease_lambda"], b["disliked_input"]))
    assert changes + 1 == len(inversions)
    weighted = grid_points("weighted-ease")
    assert all(0 < p["disliked_input"] < 1 for p in weighted) and len(weighted) == 3 * 4 * 9
    assert {p["pn_dropout"] for p in weighted} == {0.0, 0.25, 0.5}
