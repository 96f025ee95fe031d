"""EDLAE and GF-CF (issue 31 item 3) against their formulas computed directly in float64 on small
matrices, and as methods: trained, evaluated and served like EASE."""

from __future__ import annotations

import numpy as np
import pytest

from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.models.graph_filter import fit_gf_cf
from pngnn.models.linear import fit_ease, fit_edlae


def small_log(n_users: int = 40, n_items: int = 12, seed: int = 0) -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < 0.3).astype(np.float64)
    x[0, :] = 1.0  # every item rated at least once
    users, items = np.nonzero(x)
    return Interactions(users, items, np.full(len(users), 5.0, np.float32)), x


def weights_of(model) -> np.ndarray:
    """The model's weights: fitted in float64 here, kept in float32 by the model (as it serves)."""
    return model.weights.numpy().astype(np.float64)


@pytest.mark.parametrize("dropout", [0.1, 0.5, 0.8])
def test_edlae_is_the_emphasized_closed_form(dropout):
    """B = I - P diag(1/diag P), P = (XᵀX + p/(1-p) diag(XᵀX) + λI)⁻¹ (Steck 2020, full rank)."""
    train, x = small_log()
    lam = 3.0
    g = x.T @ x
    p = np.linalg.inv(g + np.diag(dropout / (1 - dropout) * np.diag(g)) + lam * np.eye(len(g)))
    expected = np.eye(len(g)) - p / np.diag(p)
    model = fit_edlae(train, x.shape[0], x.shape[1], lam, dropout, dtype=np.dtype(np.float64))
    np.testing.assert_allclose(weights_of(model), expected, rtol=1e-6, atol=1e-7)
    assert np.all(np.diag(weights_of(model)) == 0.0)


def test_edlae_without_dropout_is_ease():
    train, x = small_log(seed=1)
    edlae = fit_edlae(train, x.shape[0], x.shape[1], 5.0, 1e-9, dtype=np.dtype(np.float64))
    ease = fit_ease(train, x.shape[0], x.shape[1], 5.0, dtype=np.dtype(np.float64))
    np.testing.assert_allclose(weights_of(edlae), weights_of(ease), rtol=1e-6, atol=1e-9)


def test_edlae_penalises_popular_items_more_than_ease():
    """The dropout penalty grows with an item's own mass: the most-rated item's outgoing weights
    shrink more than the least-rated one's, against EASE at the same λ."""
    train, x = small_log(n_users=200, n_items=10, seed=2)
    counts = x.sum(0)
    top, low = int(np.argmax(counts)), int(np.argmin(counts))
    ease = weights_of(fit_ease(train, 200, 10, 5.0, dtype=np.dtype(np.float64)))
    edlae = weights_of(fit_edlae(train, 200, 10, 5.0, 0.5, dtype=np.dtype(np.float64)))
    shrink = np.abs(edlae).sum(1) / np.abs(ease).sum(1)
    assert shrink[top] < shrink[low]


@pytest.mark.parametrize(("alpha", "k"), [(0.0, 4), (0.3, 4), (1.0, 12)])
def test_gf_cf_is_the_linear_plus_ideal_filter(alpha, k):
    """W = R̃ᵀR̃ + α D_I^-1/2 V_k V_kᵀ D_I^1/2, R̃ = D_U^-1/2 R D_I^-1/2, V_k the top-k right singular
    vectors of R̃ (Shen et al. 2021), from NumPy's SVD."""
    train, x = small_log(seed=3)
    d_u, d_i = x.sum(1), x.sum(0)
    r = x / np.sqrt(d_u)[:, None] / np.sqrt(d_i)[None, :]
    _, _, vt = np.linalg.svd(r, full_matrices=False)
    v = vt[:k].T
    expected = r.T @ r + alpha * (v / np.sqrt(d_i)[:, None]) @ (v.T * np.sqrt(d_i)[None, :])
    model = fit_gf_cf(train, x.shape[0], x.shape[1], alpha, k, dtype=np.dtype(np.float64))
    np.testing.assert_allclose(weights_of(model), expected, rtol=1e-6, atol=1e-7)


def test_gf_cf_with_every_vector_scores_like_the_hand_computed_case():
    """Two users, three items, k = all: a user's score is r_u W, hand-checked for user 0."""
    train = Interactions(np.array([0, 0, 1]), np.array([0, 1, 1]), np.full(3, 5.0, np.float32))
    model = fit_gf_cf(train, 2, 3, 0.0, 3, dtype=np.dtype(np.float64))
    # R̃: user 0 (degree 2) rated items 0 (degree 1), 1 (degree 2); user 1 (degree 1) rated item 1
    # P̃[0, 0] = 1/2, P̃[0, 1] = 1/(2 sqrt 2), P̃[1, 1] = 1/4 + 1/2; user 0 scores r_0 P̃
    import torch

    scores = model.full_sort_predict(torch.tensor([0])).numpy()[0]
    expected = np.array([0.5 + 1 / (2 * np.sqrt(2)), 1 / (2 * np.sqrt(2)) + 0.75, 0.0])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_bad_settings_are_one_line():
    train, x = small_log()
    with pytest.raises(PngnnError, match=r"dropout probability must lie in \(0, 1\), got 1.0"):
        fit_edlae(train, x.shape[0], x.shape[1], 1.0, 1.0)
    with pytest.raises(PngnnError, match=r"edlae_dropout=0\.0 must lie in"):
        TrainConfig(edlae_dropout=0.0)
    with pytest.raises(PngnnError, match="gfcf_k=0 must be at least 1"):
        TrainConfig(gfcf_k=0)


@pytest.mark.parametrize("method", ["edlae", "gf-cf", "weighted-ease"])
def test_the_methods_train_evaluate_and_serve_as_ease_does(method, ml100k_split):
    from pngnn.training.methods import method_settings, train_method
    from pngnn.training.outcome import evaluate_step

    cfg = TrainConfig(gfcf_k=64, disliked_input=0.375, pn_dropout=0.25)
    result = train_method(method, ml100k_split, cfg)
    metrics, _ = evaluate_step(result.model, ml100k_split, cfg.threshold)
    popular, _ = evaluate_step(train_method("mostpop", ml100k_split, cfg).model, ml100k_split, cfg.threshold)
    assert metrics["recall@20"] > popular["recall@20"]  # a real model, not the popularity ranking
    factors = result.model.score_factors()
    assert factors.item_weights.shape == (ml100k_split.n_items, ml100k_split.n_items)
    assert "edlae_dropout" in method_settings("edlae", cfg) and "gfcf_k" in method_settings("gf-cf", cfg)
